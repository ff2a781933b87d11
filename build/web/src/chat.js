// The chat panel beside the player. It speaks Starling's chat protocol,
// which is Owncast's (docs/chat.md): register once over HTTP, keep the
// access token, then one WebSocket at /ws that carries JSON events.
//
// The first half of this file is plain logic with no DOM or network, unit
// tested in test/chat.test.js: frame parsing, the reconnect backoff, the
// HTML sanitiser (given a parser and a document) and ChatModel, which turns
// server events into view updates. startChat() at the end wires it to the
// page.

import { EMOJI, customEmojiMap, emojiFile, replaceEmoji } from './emoji.js';

export const TOKEN_KEY = 'starling.chat.token'; // the access token: it is the user
export const USER_KEY = 'starling.chat.user'; // the user as registered, JSON, for the name on re-registration
export const MAX_BODY = 500; // characters of a message, as the server counts them at most (docs/chat.md)
export const MAX_NAME = 30;
export const MAX_MESSAGES = 500; // rows kept in the DOM; older ones are dropped
export const COUNTER_FROM = 400; // the character counter shows from this length on

// ---------------------------------------------------------------- frames

// parseFrame splits one text frame into its events: one JSON object per
// line. A line that is not a JSON object with a string type is skipped, so
// one bad event cannot hide the others in its frame.
export function parseFrame(data) {
  if (typeof data !== 'string') return [];
  const events = [];
  for (const line of data.split('\n')) {
    if (!line.trim()) continue;
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      continue;
    }
    if (ev && typeof ev === 'object' && !Array.isArray(ev) && typeof ev.type === 'string') events.push(ev);
  }
  return events;
}

// wsURL is the chat WebSocket of the page's own origin (the server checks
// Origin): wss: under https:, ws: otherwise.
export function wsURL(loc, token) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws?accessToken=${encodeURIComponent(token)}`;
}

// ---------------------------------------------------------------- backoff

// Backoff gives the delays between reconnection attempts: 1 s, 2 s, 4 s …
// up to 30 s, each spread by ±25 % (never outside 1 s to 30 s) so that the
// viewers of a server that restarts do not all come back in the same
// second. reset() after a connection that worked.
export class Backoff {
  constructor({ minMs = 1000, maxMs = 30000, jitter = 0.25, random = Math.random } = {}) {
    this.minMs = minMs;
    this.maxMs = maxMs;
    this.jitter = jitter;
    this.random = random;
    this.attempt = 0;
  }

  next() {
    const base = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const spread = 1 - this.jitter + 2 * this.jitter * this.random();
    return Math.round(Math.min(this.maxMs, Math.max(this.minMs, base * spread)));
  }

  reset() {
    this.attempt = 0;
  }
}

// ---------------------------------------------------------------- sanitiser

// The server sends message bodies as HTML it has already sanitised
// (chat/format). The page does not rely on that alone: it parses the body
// into an inert document (DOMParser runs no script and loads nothing) and
// copies into the page only this allowlist, building every element anew.
// Anything else is unwrapped to its text; script and style content, and
// everything outside the HTML namespace but its text, is dropped or kept as
// text. No attribute is ever copied except a link's href, and only an
// absolute http(s) one.
const ALLOWED = new Set(['p', 'br', 'strong', 'em', 'del', 'code', 'pre', 'a']);
// The about page and the summary (the admin's Markdown, rendered by the
// server) also have headings, lists, quotes, rules, tables and images of
// this origin (the CSP's img-src would block others anyway).
export const PAGE_TAGS = new Set([
  ...ALLOWED,
  ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'ul', 'ol', 'li', 'blockquote', 'hr', 'img'],
  ...['table', 'thead', 'tbody', 'tr', 'th', 'td', 's', 'sup', 'sub'],
]);
const DROPPED = new Set(['script', 'style', 'template', 'noscript', 'title', 'head', 'iframe', 'noembed', 'noframes', 'xmp']);
const HTML_NS = 'http://www.w3.org/1999/xhtml';
const MAX_DEPTH = 32; // deeper markup is flattened to text

const ELEMENT_NODE = 1;
const TEXT_NODE = 3;

// safeHref returns the normalised URL of an absolute http(s) link, or null.
export function safeHref(raw) {
  if (typeof raw !== 'string') return null;
  let url;
  try {
    url = new URL(raw.trim());
  } catch {
    return null;
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
}

// sanitizeTree copies the allowed part of the children of root (a node of
// an inert document) into a new fragment of doc.
export function sanitizeTree(root, doc, allowed = ALLOWED) {
  const out = doc.createDocumentFragment();
  copyChildren(root, out, doc, 0, allowed);
  return out;
}

function copyChildren(from, to, doc, depth, allowed) {
  for (let n = from.firstChild; n; n = n.nextSibling) copyNode(n, to, doc, depth, allowed);
}

// sameOriginPath returns src if it is a path on this origin ("/logo"),
// else null: no scheme, no "//host", no backslash tricks.
export function sameOriginPath(src) {
  return typeof src === 'string' && /^\/(?![/\\])[^\s\\]*$/.test(src) ? src : null;
}

function copyNode(node, to, doc, depth, allowed) {
  if (node.nodeType === TEXT_NODE) {
    to.appendChild(doc.createTextNode(node.nodeValue));
    return;
  }
  if (node.nodeType !== ELEMENT_NODE) return; // comments, processing instructions
  const name = String(node.localName || '').toLowerCase();
  if (DROPPED.has(name)) return;
  const html = !node.namespaceURI || node.namespaceURI === HTML_NS;
  if (depth >= MAX_DEPTH) {
    to.appendChild(doc.createTextNode(node.textContent || ''));
    return;
  }
  if (!html || !allowed.has(name)) {
    copyChildren(node, to, doc, depth + 1, allowed); // unwrap: keep the text
    return;
  }
  let el;
  if (name === 'img') {
    const src = sameOriginPath(node.getAttribute('src'));
    if (!src) return;
    el = doc.createElement('img');
    el.setAttribute('src', src);
    el.setAttribute('alt', node.getAttribute('alt') || '');
    to.appendChild(el);
    return;
  }
  if (name === 'a') {
    const href = safeHref(node.getAttribute('href'));
    if (!href) {
      copyChildren(node, to, doc, depth + 1, allowed);
      return;
    }
    el = doc.createElement('a');
    el.setAttribute('href', href);
    el.setAttribute('target', '_blank');
    el.setAttribute('rel', 'nofollow noreferrer noopener');
  } else {
    el = doc.createElement(name);
  }
  if (name !== 'br' && name !== 'hr') copyChildren(node, el, doc, depth + 1, allowed);
  to.appendChild(el);
}

// sanitizeHTML parses html in an inert document and returns the allowed
// part as a fragment of doc. parser is a DOMParser (the page's, or a test's).
export function sanitizeHTML(html, doc, parser, allowed = ALLOWED) {
  if (typeof html !== 'string' || html === '') return doc.createDocumentFragment();
  // The explicit document shell puts the body where every parser agrees.
  const inert = parser.parseFromString(`<!doctype html><html><head></head><body>${html}</body></html>`, 'text/html');
  return sanitizeTree(inert.body, doc, allowed);
}

// ---------------------------------------------------------------- model

// ERROR_TEXT is what a viewer reads for each CHAT_ACTION error code.
export const ERROR_TEXT = {
  BAD_MESSAGE: "The server didn't understand that message.",
  MESSAGE_TOO_LONG: `That message is too long: ${MAX_BODY} characters at most.`,
  EMPTY_MESSAGE: "There's nothing to send.",
  RATE_LIMITED: "You're sending messages too fast — wait a moment.",
  FLOODING: 'You sent too many messages too fast and were disconnected.',
  CHAT_OFF: 'Chat is off right now.',
  NAME_TAKEN: 'That name is taken — try another.',
  NAME_FORBIDDEN: "That name isn't allowed here — try another.",
  NAME_INVALID: `Names are 1 to ${MAX_NAME} characters.`,
  COLOR_INVALID: "That colour isn't available.",
  INTERNAL_ERROR: 'Something went wrong on the server. Try again.',
};

// Codes after which the message was not sent: the page puts the text back.
export const UNSENT_CODES = new Set(['MESSAGE_TOO_LONG', 'RATE_LIMITED', 'FLOODING', 'CHAT_OFF', 'INTERNAL_ERROR']);

export const isNameError = (code) => typeof code === 'string' && code.startsWith('NAME_');

// colorClass maps a user's displayColor (0 to 7) to a CSS class; anything
// else gets colour 0.
export function colorClass(color) {
  return `chat-color-${Number.isInteger(color) && color >= 0 && color <= 7 ? color : 0}`;
}

const str = (v) => (typeof v === 'string' ? v : '');
const nameOf = (user) => str(user && user.displayName) || 'Someone';

function userOf(u) {
  if (!u || typeof u !== 'object') return null;
  return {
    id: str(u.id),
    displayName: nameOf(u),
    displayColor: Number.isInteger(u.displayColor) ? u.displayColor : 0,
    moderator: Array.isArray(u.scopes) && u.scopes.includes('MODERATOR'),
  };
}

// ChatModel holds what the page knows of the chat and turns each server
// event into a list of view updates for the DOM code to apply:
//   {type: 'chat', item}            a message to append
//   {type: 'system', item}          a message from the server
//   {type: 'line', item}            a notice line: joins, renames, actions
//   {type: 'visibility', ids, visible}
//   {type: 'notice', code, text}    an error for this viewer, shown by the input
//   {type: 'user'}                  who I am changed (name, colour, moderator)
//   {type: 'status'}                chat was turned on or off
//   {type: 'stream', live}
//   {type: 'reregister'}            the token is unknown: register again
//   {type: 'disabled'}              this user may not chat any more
//   {type: 'full'}                  the server has no room: try later
// ENGAGEMENT_TEXT says what someone on the fediverse did.
const ENGAGEMENT_TEXT = {
  FEDIVERSE_ENGAGEMENT_FOLLOW: 'followed this stream',
  FEDIVERSE_ENGAGEMENT_LIKE: 'liked that this stream went live',
  FEDIVERSE_ENGAGEMENT_REPOST: 'shared this stream with their followers',
};

export class ChatModel {
  constructor() {
    this.user = null; // {id, displayName, displayColor, moderator} from CONNECTED_USER_INFO
    this.enabled = true; // CHAT_STATUS
    this.reason = '';
    this.disabled = false; // ERROR_USER_DISABLED: for good
  }

  // handle applies one event and returns the view updates.
  handle(ev) {
    if (!ev || typeof ev.type !== 'string') return [];
    const id = str(ev.id);
    const mine = ev.user && this.user && ev.user.id === this.user.id;
    switch (ev.type) {
      case 'CONNECTED_USER_INFO': {
        const user = userOf(ev.user);
        if (!user) return [];
        this.user = user;
        return [{ type: 'user' }];
      }
      case 'CHAT_STATUS':
        this.enabled = ev.enabled !== false;
        this.reason = this.enabled ? '' : str(ev.reason);
        return [{ type: 'status' }];
      case 'CHAT': {
        if (ev.visible === false) return [];
        const user = userOf(ev.user) || userOf({});
        return [
          {
            type: 'chat',
            item: {
              id,
              userId: user.id,
              name: user.displayName,
              color: user.displayColor,
              moderator: user.moderator,
              html: str(ev.body),
              timestamp: str(ev.timestamp),
              mine: Boolean(mine),
            },
          },
        ];
      }
      case 'SYSTEM':
        return [{ type: 'system', item: { id, name: str(ev.user && ev.user.displayName) || 'Server', html: str(ev.body), timestamp: str(ev.timestamp) } }];
      case 'CHAT_ACTION':
        if (ev.error) {
          const code = str(ev.error);
          return [{ type: 'notice', code, text: ERROR_TEXT[code] || null, html: str(ev.body) }];
        }
        return [{ type: 'line', item: { id, kind: 'action', html: str(ev.body) } }];
      case 'USER_JOINED':
        return [{ type: 'line', item: { id, kind: 'join', text: `${nameOf(ev.user)} joined` } }];
      case 'USER_PARTED':
        return [{ type: 'line', item: { id, kind: 'part', text: `${nameOf(ev.user)} left` } }];
      case 'NAME_CHANGE': {
        const user = userOf(ev.user);
        if (!user) return [];
        const prev = Array.isArray(ev.user.previousNames) ? ev.user.previousNames : [];
        const oldName = str(ev.oldName) || str(prev[prev.length - 2]) || 'Someone';
        const updates = [{ type: 'line', item: { id, kind: 'rename', text: `${oldName} is now ${user.displayName}` } }];
        if (mine) {
          this.user = { ...this.user, displayName: user.displayName, displayColor: user.displayColor };
          updates.push({ type: 'user' });
        }
        return updates;
      }
      case 'COLOR_CHANGE':
        if (!mine || !Number.isInteger(ev.user.displayColor)) return [];
        this.user = { ...this.user, displayColor: ev.user.displayColor };
        return [{ type: 'user' }];
      case 'VISIBILITY-UPDATE': {
        const ids = Array.isArray(ev.ids) ? ev.ids.filter((x) => typeof x === 'string') : [];
        return ids.length ? [{ type: 'visibility', ids, visible: ev.visible !== false }] : [];
      }
      case 'STREAM_STARTED':
        return [
          { type: 'line', item: { id, kind: 'stream', text: 'The stream started' } },
          { type: 'stream', live: true },
        ];
      case 'STREAM_STOPPED':
        return [
          { type: 'line', item: { id, kind: 'stream', text: 'The stream ended' } },
          { type: 'stream', live: false },
        ];
      case 'FEDIVERSE_ENGAGEMENT_FOLLOW':
      case 'FEDIVERSE_ENGAGEMENT_LIKE':
      case 'FEDIVERSE_ENGAGEMENT_REPOST': {
        // From a remote server: shown as text, whatever it holds.
        const who = str(ev.title) || 'Someone on the fediverse';
        return [{ type: 'line', item: { id, kind: 'fediverse', text: `${who} ${ENGAGEMENT_TEXT[ev.type]}` } }];
      }
      case 'ERROR_NEEDS_REGISTRATION':
        return [{ type: 'reregister' }];
      case 'ERROR_USER_DISABLED':
        this.disabled = true;
        return [{ type: 'disabled' }];
      case 'ERROR_MAX_CONNECTIONS_EXCEEDED':
        return [{ type: 'full' }];
      default:
        return []; // PING and types newer than this page
    }
  }
}

// viewState is the panel's state as tests and the UI see it.
//   connection: 'connecting' | 'open' | 'closed' (waiting to reconnect)
export function viewState(model, connection) {
  if (model.disabled) return 'disabled';
  if (connection === 'open' && !model.enabled) return 'off';
  return connection;
}

// ---------------------------------------------------------------- emoji

// The picker's emoji and their images: src/emoji.js.
export { EMOJI };

// insertAt returns value with text put in place of the selection
// [start, end), and where the caret goes; null if it would exceed max.
export function insertAt(value, start, end, text, max = MAX_BODY) {
  const s = Number.isInteger(start) ? start : value.length;
  const e = Number.isInteger(end) ? end : s;
  const next = value.slice(0, s) + text + value.slice(e);
  if (next.length > max) return null;
  return { value: next, caret: s + text.length };
}

// counterText says how many characters are left, once the message is long
// enough for it to matter; '' before.
export function counterText(length, max = MAX_BODY) {
  if (length < COUNTER_FROM) return '';
  const left = max - length;
  return left === 1 ? '1 character left' : `${left} characters left`;
}

// ---------------------------------------------------------------- page

function storageOr(get) {
  try {
    const s = get();
    const probe = '__starling_probe__';
    s.setItem(probe, '1');
    s.removeItem(probe);
    return s;
  } catch {
    const items = new Map(); // private mode or disabled storage: this page only
    return {
      getItem: (k) => (items.has(k) ? items.get(k) : null),
      setItem: (k, v) => items.set(k, String(v)),
      removeItem: (k) => items.delete(k),
    };
  }
}

const CONFIRM_DISABLE = (name) =>
  `Disable ${name}? They won't be able to chat any more, and all their messages will be hidden.`;

// startChat runs the chat panel in root (the <aside id="chat"> of
// index.html). onStream(live) is told when the stream starts or stops.
// It returns {snapshot()} for the page's test hook.
export function startChat(root, { onStream = () => {}, emojiBase = '/assets/emoji/' } = {}) {
  const $ = (id) => root.querySelector(`#${id}`);
  const ui = {
    conn: $('chat-conn'),
    banner: $('chat-banner'),
    bannerTitle: $('chat-banner-title'),
    bannerText: $('chat-banner-text'),
    log: $('chat-log'),
    jump: $('chat-jump'),
    notice: $('chat-notice'),
    form: $('chat-form'),
    input: $('chat-input'),
    send: $('chat-send'),
    emojiButton: $('chat-emoji-button'),
    emoji: $('chat-emoji'),
    counter: $('chat-counter'),
    me: $('chat-me'),
    meName: $('chat-me-name'),
    meBadge: $('chat-me-badge'),
    nameButton: $('chat-name-button'),
    nameForm: $('chat-name-form'),
    nameInput: $('chat-name-input'),
    nameCancel: $('chat-name-cancel'),
    nameNotice: $('chat-name-notice'),
  };
  const store = storageOr(() => localStorage);
  const parser = new DOMParser();
  const model = new ChatModel();
  const backoff = new Backoff();
  const rows = new Map(); // message id → its row, for VISIBILITY-UPDATE
  let customEmoji = new Map(); // the admin's emoji by name, once /api/emoji answers

  // rich is a message's HTML through the allowlist, its emoji as images.
  const rich = (html) => {
    const frag = sanitizeHTML(html, document, parser);
    replaceEmoji(frag, document, emojiBase, customEmoji);
    return frag;
  };

  let ws = null; // the current socket, null between connections
  let connection = 'connecting';
  let afterClose = 'retry'; // what the close of the current socket leads to: 'retry' | 'reregister' | 'stop'
  let registeredAt = 0; // when this page last registered, to not loop on a server that forgets users
  let reconnectAt = 0;
  let reconnectTimer = 0;
  let countdownTimer = 0;
  let noticeTimer = 0;
  let unsent = ''; // the last message sent, to put back if the server refuses it
  let renaming = false; // a NAME_CHANGE is on its way

  // -------------------------------------------------------------- connect

  async function register() {
    let wanted;
    try {
      wanted = JSON.parse(store.getItem(USER_KEY) || 'null');
    } catch {
      wanted = null;
    }
    const body = wanted && typeof wanted.displayName === 'string' ? { displayName: wanted.displayName } : {};
    const res = await fetch('/api/chat/register', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
    });
    if (!res.ok) throw new Error(`register: HTTP ${res.status}`);
    const reg = await res.json();
    if (!reg || typeof reg.accessToken !== 'string' || !reg.accessToken) throw new Error('register: no access token');
    store.setItem(TOKEN_KEY, reg.accessToken);
    store.setItem(USER_KEY, JSON.stringify({ id: reg.id, displayName: reg.displayName, displayColor: reg.displayColor }));
    registeredAt = Date.now();
    return reg.accessToken;
  }

  async function connect() {
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    if (ws || model.disabled) return;
    setConnection('connecting');
    let token = store.getItem(TOKEN_KEY);
    if (!token) {
      try {
        token = await register();
      } catch (err) {
        console.debug('chat:', err.message);
        retryLater();
        return;
      }
    }
    let socket;
    try {
      socket = new WebSocket(wsURL(location, token));
    } catch (err) {
      console.debug('chat:', err.message);
      retryLater();
      return;
    }
    ws = socket;
    afterClose = 'retry';
    socket.addEventListener('open', () => {
      if (socket !== ws) return;
      // The server sends the recent history first: start from an empty
      // list so a reconnection does not show it twice.
      clearLog();
    });
    socket.addEventListener('message', (e) => {
      if (socket === ws) onFrame(e.data);
    });
    socket.addEventListener('close', () => {
      if (socket !== ws) return;
      ws = null;
      renaming = false;
      if (afterClose === 'stop') {
        render();
        return;
      }
      if (afterClose === 'reregister') {
        store.removeItem(TOKEN_KEY);
        // Right after registering, the server should know the token; if it
        // still does not, wait like after any failure instead of looping.
        if (Date.now() - registeredAt > 10000) {
          connect();
          return;
        }
      }
      retryLater();
    });
  }

  function retryLater() {
    const delay = backoff.next();
    reconnectAt = Date.now() + delay;
    setConnection('closed');
    reconnectTimer = setTimeout(connect, delay);
    countdownTimer = setInterval(renderConnection, 1000);
  }

  // A viewer whose network comes back should not wait out the backoff.
  addEventListener('online', () => {
    if (connection === 'closed' && !ws) connect();
  });

  function setConnection(next) {
    connection = next;
    if (next !== 'closed') clearInterval(countdownTimer);
    render();
  }

  function send(obj) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  // -------------------------------------------------------------- events

  function onFrame(data) {
    const stick = atBottom();
    let added = false;
    for (const ev of parseFrame(data)) {
      if (connection === 'connecting' && !ev.type.startsWith('ERROR_')) {
        setConnection('open');
      }
      for (const u of model.handle(ev)) added = apply(u) || added;
    }
    if (added) {
      trimLog();
      if (stick) scrollToBottom();
      else ui.jump.hidden = false;
    }
  }

  // apply performs one view update; it returns whether a row was added.
  function apply(u) {
    switch (u.type) {
      case 'chat':
        if (u.item.mine) unsent = '';
        return addRow(chatRow(u.item), u.item.id);
      case 'system':
        return addRow(systemRow(u.item), u.item.id);
      case 'line':
        return addRow(lineRow(u.item), u.item.id);
      case 'visibility':
        for (const id of u.ids) {
          const row = rows.get(id);
          if (row) row.hidden = !u.visible;
        }
        return false;
      case 'notice':
        showNotice(u);
        return false;
      case 'user':
        if (model.user && model.user.id) {
          backoff.reset(); // the server took us in: the connection works
          store.setItem(USER_KEY, JSON.stringify({ id: model.user.id, displayName: model.user.displayName, displayColor: model.user.displayColor }));
        }
        if (renaming) closeNameForm();
        refreshModTools();
        render();
        return false;
      case 'status':
        render();
        return false;
      case 'stream':
        onStream(u.live);
        return false;
      case 'reregister':
        afterClose = 'reregister';
        ws.close();
        return false;
      case 'disabled':
        afterClose = 'stop';
        ws.close();
        render();
        return false;
      case 'full':
        showNotice({ text: 'The chat is full right now. Trying again shortly.' });
        return false;
      default:
        return false;
    }
  }

  // -------------------------------------------------------------- rows

  function addRow(row, id) {
    if (id) {
      const old = rows.get(id);
      if (old) old.remove(); // the same event twice: keep the newer
      rows.set(id, row);
    }
    ui.log.appendChild(row);
    return true;
  }

  function trimLog() {
    while (ui.log.childElementCount > MAX_MESSAGES) {
      const row = ui.log.firstElementChild;
      if (row.dataset.id) rows.delete(row.dataset.id);
      row.remove();
    }
  }

  function clearLog() {
    ui.log.replaceChildren();
    rows.clear();
    ui.jump.hidden = true;
  }

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function timeTitle(timestamp) {
    const t = Date.parse(timestamp);
    return Number.isNaN(t) ? '' : new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function chatRow(item) {
    const row = el('div', 'chat-msg');
    if (item.mine) row.classList.add('is-mine');
    row.dataset.id = item.id;
    row.dataset.userId = item.userId;
    row.dataset.name = item.name;
    const author = el('span', `chat-author ${colorClass(item.color)}`, item.name);
    const when = timeTitle(item.timestamp);
    if (when) author.title = when;
    const body = el('span', 'chat-body');
    body.appendChild(rich(item.html));
    row.append(author, body);
    if (model.user && model.user.moderator) row.appendChild(modTools(row));
    return row;
  }

  function systemRow(item) {
    const row = el('div', 'chat-system');
    row.dataset.id = item.id;
    const body = el('span', 'chat-body');
    body.appendChild(rich(item.html));
    row.append(el('span', 'chat-system-name', item.name), body);
    return row;
  }

  function lineRow(item) {
    const row = el('div', `chat-line chat-line-${item.kind}`);
    row.dataset.id = item.id;
    if (item.html !== undefined) row.appendChild(rich(item.html));
    else row.textContent = item.text;
    return row;
  }

  function modTools(row) {
    const name = row.dataset.name;
    const tools = el('span', 'chat-tools');
    const hide = el('button', 'chat-tool', 'Hide');
    hide.type = 'button';
    hide.dataset.action = 'hide';
    hide.setAttribute('aria-label', `Hide this message from ${name}`);
    tools.appendChild(hide);
    if (!row.classList.contains('is-mine')) {
      const disable = el('button', 'chat-tool chat-tool-danger', 'Disable');
      disable.type = 'button';
      disable.dataset.action = 'disable';
      disable.setAttribute('aria-label', `Disable ${name}: they can no longer chat`);
      tools.appendChild(disable);
    }
    return tools;
  }

  // A user made (or unmade) moderator sees the tools on the messages
  // already shown.
  function refreshModTools() {
    const mod = Boolean(model.user && model.user.moderator);
    for (const row of ui.log.querySelectorAll('.chat-msg')) {
      const tools = row.querySelector('.chat-tools');
      row.classList.toggle('is-mine', Boolean(model.user && row.dataset.userId === model.user.id));
      if (tools) tools.remove();
      if (mod) row.appendChild(modTools(row));
    }
  }

  ui.log.addEventListener('click', async (e) => {
    const button = e.target.closest('button[data-action]');
    if (!button || !ui.log.contains(button)) return;
    const row = button.closest('.chat-msg');
    const token = store.getItem(TOKEN_KEY);
    if (!row || !token) return;
    const q = `?accessToken=${encodeURIComponent(token)}`;
    let path;
    let body;
    if (button.dataset.action === 'hide') {
      path = '/api/chat/messagevisibility';
      body = { idArray: [row.dataset.id], visible: false };
    } else {
      if (!confirm(CONFIRM_DISABLE(row.dataset.name))) return;
      path = '/api/chat/users/setenabled';
      body = { userId: row.dataset.userId, enabled: false };
    }
    button.disabled = true;
    try {
      const res = await fetch(path + q, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        cache: 'no-store',
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      // The server's VISIBILITY-UPDATE follows; hide at once meanwhile.
      if (button.dataset.action === 'hide') row.hidden = true;
    } catch (err) {
      showNotice({ text: `That didn't work (${err.message}). Try again.` });
    } finally {
      button.disabled = false;
    }
  });

  // -------------------------------------------------------------- scrolling

  // The list follows new messages unless the viewer scrolled up to read;
  // then a button offers the way back down.
  function atBottom() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 48;
  }

  function scrollToBottom() {
    ui.log.scrollTop = ui.log.scrollHeight;
    ui.jump.hidden = true;
  }

  ui.log.addEventListener('scroll', () => {
    if (atBottom()) ui.jump.hidden = true;
  });
  ui.jump.addEventListener('click', () => {
    scrollToBottom();
    ui.input.focus();
  });

  // -------------------------------------------------------------- notices

  function showNotice(u) {
    let text = u.text;
    if (!text) text = sanitizeHTML(u.html || '', document, parser).textContent.trim() || 'The server refused that.';
    const forName = isNameError(u.code) && !ui.nameForm.hidden;
    if (forName) {
      renaming = false;
      ui.nameNotice.textContent = text;
      ui.nameNotice.hidden = false;
      renderName();
      ui.nameInput.focus();
      return;
    }
    if (UNSENT_CODES.has(u.code) && unsent && !ui.input.value) {
      ui.input.value = unsent;
      renderCounter();
    }
    unsent = '';
    ui.notice.textContent = text;
    ui.notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(hideNotice, 8000);
  }

  function hideNotice() {
    clearTimeout(noticeTimer);
    ui.notice.hidden = true;
    ui.notice.textContent = '';
  }

  // -------------------------------------------------------------- composer

  ui.form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (viewState(model, connection) !== 'open') return;
    const value = ui.input.value;
    if (!value.trim()) return;
    if (value.length > MAX_BODY) {
      showNotice({ code: 'MESSAGE_TOO_LONG', text: ERROR_TEXT.MESSAGE_TOO_LONG });
      return;
    }
    if (!send({ type: 'CHAT', body: value })) return;
    unsent = value;
    ui.input.value = '';
    hideNotice();
    renderCounter();
    closeEmoji();
    scrollToBottom();
  });

  ui.input.addEventListener('input', renderCounter);

  function renderCounter() {
    const text = counterText(ui.input.value.length);
    ui.counter.hidden = !text;
    ui.counter.textContent = text;
    ui.counter.classList.toggle('is-low', ui.input.value.length >= MAX_BODY - 20);
  }

  // Emoji picker: the bundled set, then the admin's custom emoji, which
  // go into a message as :name:.
  const emojiImage = (src, alt) => {
    const img = document.createElement('img');
    img.className = 'emoji';
    img.src = src;
    img.alt = alt;
    img.draggable = false;
    return img;
  };
  const emojiButton = (insert, label, img) => {
    const b = el('button', 'chat-emoji-item');
    b.type = 'button';
    b.setAttribute('aria-label', label);
    b.title = label;
    b.dataset.emoji = insert;
    b.appendChild(img);
    ui.emoji.appendChild(b);
    return b;
  };
  for (const [char, label] of EMOJI) emojiButton(char, label, emojiImage(emojiBase + emojiFile(char), char));
  ui.emojiButton.replaceChildren(emojiImage(emojiBase + emojiFile('😊'), ''));
  fetch('/api/emoji', { headers: { Accept: 'application/json' } })
    .then((res) => (res.ok ? res.json() : []))
    .then((list) => {
      customEmoji = customEmojiMap(list);
      for (const [name, url] of customEmoji) {
        emojiButton(`:${name}:`, name, emojiImage(url, `:${name}:`)).classList.add('is-custom');
      }
    })
    .catch((err) => console.debug('chat: custom emoji unavailable:', err.message));

  function closeEmoji() {
    ui.emoji.hidden = true;
    ui.emojiButton.setAttribute('aria-expanded', 'false');
  }

  ui.emojiButton.addEventListener('click', () => {
    const open = ui.emoji.hidden;
    ui.emoji.hidden = !open;
    ui.emojiButton.setAttribute('aria-expanded', String(open));
    if (open) ui.emoji.querySelector('button').focus();
  });

  ui.emoji.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-emoji]');
    if (!b || ui.input.disabled) return;
    const next = insertAt(ui.input.value, ui.input.selectionStart, ui.input.selectionEnd, b.dataset.emoji);
    if (!next) return;
    ui.input.value = next.value;
    ui.input.focus();
    ui.input.setSelectionRange(next.caret, next.caret);
    renderCounter();
  });

  root.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    if (!ui.emoji.hidden) {
      closeEmoji();
      ui.emojiButton.focus();
    } else if (!ui.nameForm.hidden) {
      closeNameForm();
      ui.nameButton.focus();
    }
  });

  document.addEventListener('click', (e) => {
    if (!ui.emoji.hidden && !ui.emoji.contains(e.target) && !ui.emojiButton.contains(e.target)) closeEmoji();
  });

  // Name change.
  ui.nameButton.addEventListener('click', () => {
    ui.nameForm.hidden = false;
    ui.nameButton.setAttribute('aria-expanded', 'true');
    ui.nameNotice.hidden = true;
    ui.nameInput.value = (model.user && model.user.displayName) || '';
    ui.nameInput.focus();
    ui.nameInput.select();
  });

  ui.nameCancel.addEventListener('click', () => {
    closeNameForm();
    ui.nameButton.focus();
  });

  ui.nameForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = ui.nameInput.value.trim();
    if (!name || [...name].length > MAX_NAME) {
      showNotice({ code: 'NAME_INVALID', text: ERROR_TEXT.NAME_INVALID });
      return;
    }
    if (model.user && name === model.user.displayName) {
      closeNameForm();
      return;
    }
    if (!send({ type: 'NAME_CHANGE', newName: name })) return;
    renaming = true;
    ui.nameNotice.hidden = true;
    renderName();
  });

  function closeNameForm() {
    renaming = false;
    ui.nameForm.hidden = true;
    ui.nameNotice.hidden = true;
    ui.nameButton.setAttribute('aria-expanded', 'false');
    renderName();
  }

  // -------------------------------------------------------------- render

  function renderConnection() {
    const state = viewState(model, connection);
    let text = '';
    if (state === 'connecting') text = 'Connecting…';
    else if (state === 'closed') {
      const s = Math.max(1, Math.ceil((reconnectAt - Date.now()) / 1000));
      text = `Reconnecting in ${s} s…`;
    }
    if (ui.conn.textContent !== text) ui.conn.textContent = text;
    ui.conn.hidden = !text;
    return state;
  }

  function renderName() {
    const user = model.user;
    ui.me.hidden = !user;
    if (user) {
      ui.meName.textContent = user.displayName;
      ui.meName.className = `chat-me-name ${colorClass(user.displayColor)}`;
      ui.meBadge.hidden = !user.moderator;
    }
    const open = viewState(model, connection) === 'open';
    ui.nameButton.disabled = !open || !user;
    for (const c of ui.nameForm.elements) c.disabled = !open || renaming;
    ui.nameCancel.disabled = false;
  }

  const PLACEHOLDER = {
    connecting: 'Connecting to chat…',
    closed: 'Disconnected — reconnecting soon…',
    open: 'Send a message',
    off: 'Chat is off',
    disabled: "You can't chat here any more",
  };

  function render() {
    const state = renderConnection();
    root.dataset.state = state;
    const open = state === 'open';
    ui.input.disabled = !open;
    ui.send.disabled = !open;
    ui.emojiButton.disabled = !open;
    if (!open) {
      closeEmoji();
      if (!ui.nameForm.hidden) closeNameForm();
    }
    ui.input.placeholder = PLACEHOLDER[state];

    ui.banner.hidden = state !== 'off' && state !== 'disabled';
    if (state === 'off') {
      ui.bannerTitle.textContent = 'Chat is off';
      ui.bannerText.textContent = model.reason;
      ui.bannerText.hidden = !model.reason;
    } else if (state === 'disabled') {
      ui.bannerTitle.textContent = "You can't chat here any more";
      ui.bannerText.textContent = 'A moderator has turned off chat for you.';
      ui.bannerText.hidden = false;
    }
    renderName();
  }

  render();
  connect();

  return {
    // snapshot is a copy of the panel's state for browser tests.
    snapshot() {
      return {
        state: viewState(model, connection),
        user: model.user ? { ...model.user } : null,
        moderator: Boolean(model.user && model.user.moderator),
        enabled: model.enabled,
        reason: model.reason,
        messages: ui.log.querySelectorAll('.chat-msg:not([hidden])').length,
      };
    },
  };
}
