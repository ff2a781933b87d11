// The pages about people: chat moderation, the fediverse, integrations
// (webhooks and access tokens), and the logs.
import { useState } from 'preact/hooks';
import { get, post } from './api.js';
import { Card, html, Loading, Setting, Table, useAsync, usePoll, useSave } from './ui.js';

function when(t) {
  if (!t) return '–';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? '–' : d.toLocaleString();
}

function Result({ save }) {
  if (!save.status) return null;
  return html`<span class=${'status ' + save.status.kind} role=${save.status.kind === 'error' ? 'alert' : 'status'}>${save.status.text}</span>`;
}

// ---------------------------------------------------------------- chat

// textOf is a message body's text: bodies are HTML the server sanitised,
// shown here as text all the same.
function textOf(body) {
  const doc = new DOMParser().parseFromString(String(body || ''), 'text/html');
  return doc.body.textContent || '';
}

export function Moderation() {
  const [messages, setMessages] = useState(null);
  const [users, setUsers] = useState({ disabled: [], moderators: [], bans: [] });
  const [error, setError] = useState(null);
  const save = useSave();
  const refresh = async () => {
    try {
      const [m, disabled, moderators, bans] = await Promise.all([
        get('/api/admin/chat/messages'),
        get('/api/admin/chat/users/disabled'),
        get('/api/admin/chat/users/moderators'),
        get('/api/admin/chat/users/ipbans'),
      ]);
      setMessages(m.filter((e) => e.type === 'CHAT').slice(-200).reverse());
      setUsers({ disabled, moderators, bans });
      setError(null);
    } catch (e) {
      setError(e.message);
    }
  };
  usePoll(refresh, 3000);
  const act = (f, ok) => save.run(f, ok).then(refresh, () => {});
  const isMod = (id) => users.moderators.some((u) => u.id === id);
  const [ip, setIP] = useState('');
  return html`<div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <${Result} save=${save} />
    <${Card} title="Recent messages" wide>
      ${messages === null
        ? html`<p class="muted" role="status">Loading…</p>`
        : html`<${Table} caption="Recent chat messages" rows=${messages} empty="No messages yet."
            columns=${[
              { label: 'When', render: (m) => when(m.timestamp) },
              { label: 'Who', render: (m) => (m.user ? m.user.displayName : '') },
              { label: 'Message', render: (m) => html`<span class=${m.visible === false ? 'hidden-msg' : ''}>${textOf(m.body)}</span>` },
              {
                label: 'Actions',
                render: (m) => html`<div class="actions">
                  <button type="button" class="secondary" data-message=${m.id}
                    onClick=${() => act(() => post('/api/admin/chat/messagevisibility', { idArray: [m.id], visible: m.visible === false }), m.visible === false ? 'Shown again' : 'Hidden')}>
                    ${m.visible === false ? 'Show' : 'Hide'}</button>
                  ${m.user &&
                  html`<button type="button" class="secondary" onClick=${() => act(() => post('/api/admin/chat/users/setmoderator', { userId: m.user.id, isModerator: !isMod(m.user.id) }), 'Changed')}>
                      ${isMod(m.user.id) ? 'Remove moderator' : 'Make moderator'}</button>
                    <button type="button" class="danger" onClick=${() => act(() => post('/api/admin/chat/users/setenabled', { userId: m.user.id, enabled: false }), 'User disabled')}>Disable user</button>`}
                </div>`,
              },
            ]} />`}
    <//>
    <${Card} title="Disabled users">
      <${Table} caption="Disabled users" rows=${users.disabled} empty="Nobody is disabled."
        columns=${[{ label: 'Name', key: 'displayName' }, { label: 'Since', render: (u) => when(u.disabledAt) },
          { label: '', render: (u) => html`<button type="button" class="secondary" onClick=${() => act(() => post('/api/admin/chat/users/setenabled', { userId: u.id, enabled: true }), 'Enabled again')}>Enable</button>` }]} />
    <//>
    <${Card} title="Moderators">
      <${Table} caption="Moderators" rows=${users.moderators} empty="No moderators."
        columns=${[{ label: 'Name', key: 'displayName' },
          { label: '', render: (u) => html`<button type="button" class="secondary" onClick=${() => act(() => post('/api/admin/chat/users/setmoderator', { userId: u.id, isModerator: false }), 'Changed')}>Remove</button>` }]} />
    <//>
    <${Card} title="Banned addresses">
      <form class="row" onSubmit=${(e) => {
        e.preventDefault();
        act(() => post('/api/admin/chat/users/ipbans/create', { value: ip.trim() }), 'Banned').then(() => setIP(''));
      }}>
        <label for="ban-ip">Address</label>
        <input id="ban-ip" value=${ip} onInput=${(e) => setIP(e.target.value)} placeholder="203.0.113.7" />
        <button type="submit">Ban</button>
      </form>
      <${Table} caption="Banned addresses" rows=${users.bans} empty="No bans."
        columns=${[{ label: 'Address', key: 'ipAddress' }, { label: 'Notes', key: 'notes' }, { label: 'Since', render: (b) => when(b.createdAt) },
          { label: '', render: (b) => html`<button type="button" class="secondary" onClick=${() => act(() => post('/api/admin/chat/users/ipbans/remove', { value: b.ipAddress }), 'Unbanned')}>Unban</button>` }]} />
    <//>
  </div>`;
}

// ---------------------------------------------------------------- fediverse

function Followers({ state, title, approve }) {
  const [list, reload] = useAsync(() => get('/api/admin/followers' + (state ? '/' + state : '')));
  const save = useSave();
  const decide = (actorIRI, approved) =>
    save.run(() => post('/api/admin/followers/approve', { actorIRI, approved }), approved ? 'Approved' : 'Rejected').then(reload, () => {});
  return html`<${Card} title=${title}>
    <${Result} save=${save} />
    <${Loading} state=${list}>${(rows) => html`<${Table} caption=${title} rows=${rows} empty="None."
      columns=${[
        { label: 'Account', render: (f) => html`<a href=${/^https?:\/\//.test(f.link) ? f.link : '#'} rel="noopener noreferrer" target="_blank">${f.username || f.link}</a>` },
        { label: 'Name', key: 'name' },
        { label: 'Since', render: (f) => when(f.timestamp) },
        ...(approve
          ? [{ label: '', render: (f) => html`<div class="actions"><button type="button" onClick=${() => decide(f.link, true)}>Approve</button><button type="button" class="danger" onClick=${() => decide(f.link, false)}>Reject</button></div>` }]
          : [{ label: '', render: (f) => html`<button type="button" class="secondary" onClick=${() => decide(f.link, false)}>Remove</button>` }]),
      ]} />`}<//>
  <//>`;
}

function SendPost() {
  const [text, setText] = useState('');
  const save = useSave();
  return html`<${Card} title="Send a post">
    <form onSubmit=${(e) => {
      e.preventDefault();
      save.run(() => post('/api/admin/federation/send', { value: text }), 'Sent to the followers').then(() => setText(''), () => {});
    }}>
      <label for="fedi-post">Text (500 characters at most)</label>
      <textarea id="fedi-post" rows="3" maxlength="500" value=${text} onInput=${(e) => setText(e.target.value)} />
      <button type="submit" disabled=${save.busy}>Send</button>
      <${Result} save=${save} />
    </form>
  <//>`;
}

export function Fediverse() {
  const [config] = useAsync(() => get('/api/admin/serverconfig'));
  const [status] = useAsync(() => get('/api/admin/status'));
  const [posts] = useAsync(() => get('/api/admin/federation/posts?limit=20'));
  const [actions] = useAsync(() => get('/api/admin/federation/actions?limit=50'));
  return html`<div>
    <${Loading} state=${config}>${(c) => {
      const f = c.federation;
      const st = status.data && status.data.federation;
      return html`<${Card} title="The fediverse account" wide>
        ${st && st.handle && html`<p>Followers find the stream as <strong>${st.handle}</strong>: ${st.followers} follow it, ${st.pending} ask to.</p>`}
        ${st && (st.warnings || []).map((w) => html`<p class="warn" role="alert">${w}</p>`)}
        <${Setting} label="The stream is a fediverse account" path="federation/enable" value=${f.enabled} kind="bool" help="Needs the server URL (Server page), over https." />
        <${Setting} label="Username" path="federation/username" value=${f.username} help="Changing it moves the account: existing follows stop." />
        <${Setting} label="Private: approve each follower" path="federation/private" value=${f.isPrivate} kind="bool" />
        <${Setting} label="Show follows, likes and boosts in chat" path="federation/showengagement" value=${f.showEngagement} kind="bool" />
        <${Setting} label="Go-live message" path="federation/livemessage" value=${f.goLiveMessage} />
        <${Setting} label="Seconds live before the go-live post" path="federation/golivedelay" value=${f.goLiveDelaySeconds} kind="number" />
        <${Setting} label="Blocked domains" path="federation/blockdomains" value=${f.blockedDomains} kind="list" help="One a line; their subdomains too." />
      <//>`;
    }}<//>
    <${Followers} state="pending" title="Follow requests" approve=${true} />
    <${Followers} state="" title="Followers" />
    <${Followers} state="blocked" title="Rejected" approve=${true} />
    <${SendPost} />
    <${Card} title="Posts sent" wide>
      <${Loading} state=${posts}>${(rows) => html`<${Table} caption="Posts sent" rows=${rows} empty="No posts yet."
        columns=${[{ label: 'When', render: (p) => when(p.createdAt) }, { label: 'Kind', key: 'kind' },
          { label: 'Post', render: (p) => textOf(p.content) },
          { label: 'Delivered', render: (p) => `${p.delivered} of ${p.recipients}${p.pending ? `, ${p.pending} pending` : ''}${p.failed ? `, ${p.failed} failed` : ''}` }]} />`}<//>
    <//>
    <${Card} title="Follows, likes and boosts" wide>
      <${Loading} state=${actions}>${(rows) => html`<${Table} caption="Activities received" rows=${rows} empty="Nothing yet."
        columns=${[{ label: 'When', render: (a) => when(a.timestamp) }, { label: 'What', key: 'type' }, { label: 'Who', key: 'actorIRI' }]} />`}<//>
    <//>
  </div>`;
}

// ---------------------------------------------------------------- integrations

const EVENTS = ['CHAT', 'USER_JOINED', 'USER_PARTED', 'NAME_CHANGE', 'VISIBILITY-UPDATE', 'STREAM_STARTED', 'STREAM_STOPPED', 'STREAM_TITLE_UPDATED'];
const SCOPES = ['CAN_SEND_MESSAGES', 'CAN_SEND_SYSTEM_MESSAGES', 'HAS_ADMIN_ACCESS'];

function Checks({ name, all, chosen, set }) {
  return html`<fieldset class="checks"><legend>${name}</legend>
    ${all.map((v) => html`<label class="inline"><input type="checkbox" checked=${chosen.includes(v)} onChange=${(e) => set(e.target.checked ? chosen.concat([v]) : chosen.filter((x) => x !== v))} /> ${v}</label>`)}
  </fieldset>`;
}

function Webhooks() {
  const [list, reload] = useAsync(() => get('/api/admin/webhooks'));
  const [url, setURL] = useState('');
  const [events, setEvents] = useState(['STREAM_STARTED', 'STREAM_STOPPED']);
  const [secret, setSecret] = useState(null);
  const save = useSave();
  return html`<${Card} title="Webhooks" wide>
    <form onSubmit=${(e) => {
      e.preventDefault();
      save.run(() => post('/api/admin/webhooks/create', { url, events }), 'Webhook added').then((r) => {
        setSecret(r.secret);
        setURL('');
        reload();
      }, () => {});
    }}>
      <label for="hook-url">URL</label>
      <input id="hook-url" value=${url} onInput=${(e) => setURL(e.target.value)} placeholder="https://bots.example.com/starling" />
      <${Checks} name="Events" all=${EVENTS} chosen=${events} set=${setEvents} />
      <button type="submit" disabled=${save.busy}>Add</button>
      <${Result} save=${save} />
    </form>
    ${secret && html`<p role="status">Its signing secret, shown this once: <code>${secret}</code></p>`}
    <${Loading} state=${list}>${(rows) => html`<${Table} caption="Webhooks" rows=${rows} empty="No webhooks."
      columns=${[{ label: 'URL', key: 'url' }, { label: 'Events', render: (w) => w.events.join(', ') },
        { label: 'Last delivered', render: (w) => when(w.lastUsed) },
        { label: 'Last error', render: (w) => (w.lastError ? `${w.lastError} (${when(w.lastErrorAt)})` : '–') },
        { label: '', render: (w) => html`<button type="button" class="danger" onClick=${() => save.run(() => post('/api/admin/webhooks/delete', { id: w.id }), 'Deleted').then(reload, () => {})}>Delete</button>` }]} />`}<//>
  <//>`;
}

function Tokens() {
  const [list, reload] = useAsync(() => get('/api/admin/accesstokens'));
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState(['CAN_SEND_MESSAGES']);
  const [token, setToken] = useState(null);
  const save = useSave();
  return html`<${Card} title="Access tokens" wide>
    <form onSubmit=${(e) => {
      e.preventDefault();
      save.run(() => post('/api/admin/accesstokens/create', { name, scopes }), 'Token created').then((r) => {
        setToken(r.accessToken || r.token);
        setName('');
        reload();
      }, () => {});
    }}>
      <label for="token-name">Bot name</label>
      <input id="token-name" value=${name} onInput=${(e) => setName(e.target.value)} placeholder="Relay Bot" />
      <${Checks} name="Scopes" all=${SCOPES} chosen=${scopes} set=${setScopes} />
      <button type="submit" disabled=${save.busy}>Create</button>
      <${Result} save=${save} />
    </form>
    ${token && html`<p role="status">The token, shown this once: <code>${token}</code></p>`}
    <${Loading} state=${list}>${(rows) => html`<${Table} caption="Access tokens" rows=${rows} empty="No tokens."
      columns=${[{ label: 'Name', render: (t) => t.displayName || t.name }, { label: 'Scopes', render: (t) => (t.scopes || []).join(', ') },
        { label: 'Last used', render: (t) => when(t.lastUsedAt) },
        { label: '', render: (t) => html`<button type="button" class="danger" onClick=${() => save.run(() => post('/api/admin/accesstokens/delete', { id: t.id }), 'Deleted').then(reload, () => {})}>Delete</button>` }]} />`}<//>
  <//>`;
}

export function Integrations() {
  return html`<div><${Webhooks} /><${Tokens} /></div>`;
}

// ---------------------------------------------------------------- logs

export function Logs() {
  const [entries, setEntries] = useState(null);
  const [level, setLevel] = useState('');
  const [text, setText] = useState('');
  usePoll(async () => setEntries(await get('/api/admin/logs')), 5000);
  const shown = (entries || [])
    .filter((e) => !level || e.level === level)
    .filter((e) => !text || e.message.toLowerCase().includes(text.toLowerCase()))
    .slice()
    .reverse();
  return html`<${Card} title="Logs" wide>
    <div class="row filters">
      <label for="log-level">Level</label>
      <select id="log-level" value=${level} onChange=${(e) => setLevel(e.target.value)}>
        <option value="">all</option><option value="ERROR">errors</option><option value="WARN">warnings</option><option value="INFO">info</option>
      </select>
      <label for="log-text">Containing</label>
      <input id="log-text" value=${text} onInput=${(e) => setText(e.target.value)} />
    </div>
    ${entries === null
      ? html`<p class="muted" role="status">Loading…</p>`
      : html`<ol class="logs">${shown.map((e) => html`<li class=${'log ' + e.level.toLowerCase()}><time>${when(e.time)}</time> <b>${e.level}</b> ${e.message}</li>`)}</ol>`}
  <//>`;
}

