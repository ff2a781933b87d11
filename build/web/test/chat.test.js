// Unit tests for the chat panel's logic (src/chat.js): node --test (npm test).
// The sanitiser runs on linkedom, a DOM for node; in the page it runs on the
// browser's own DOMParser (and chat_browser_test.go checks it there).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DOMParser } from 'linkedom';
import {
  Backoff,
  ChatModel,
  EMOJI,
  ERROR_TEXT,
  MAX_BODY,
  colorClass,
  counterText,
  insertAt,
  parseFrame,
  safeHref,
  sanitizeHTML,
  viewState,
  wsURL,
} from '../src/chat.js';

describe('parseFrame', () => {
  it('splits a frame into its events, one JSON object a line', () => {
    const frame = [
      JSON.stringify({ type: 'CONNECTED_USER_INFO', id: 'a' }),
      JSON.stringify({ type: 'CHAT_STATUS', id: 'b', enabled: true }),
      JSON.stringify({ type: 'CHAT', id: 'c', body: 'line one\nline two' }),
    ].join('\n');
    const events = parseFrame(frame);
    assert.deepEqual(
      events.map((e) => e.id),
      ['a', 'b', 'c'],
    );
    assert.equal(events[2].body, 'line one\nline two'); // an escaped newline is not a separator
  });

  it('skips blank lines, a trailing newline and CRLF', () => {
    const events = parseFrame('\n{"type":"A"}\r\n\n{"type":"B"}\n');
    assert.deepEqual(
      events.map((e) => e.type),
      ['A', 'B'],
    );
  });

  it('skips what is not an event, keeping the rest of the frame', () => {
    const frame = ['{"type":"A"}', '{bad json', '[1,2]', 'null', '"CHAT"', '{"type":7}', '{"id":"x"}', '{"type":"B"}'].join('\n');
    assert.deepEqual(
      parseFrame(frame).map((e) => e.type),
      ['A', 'B'],
    );
  });

  it('is empty for binary or missing data', () => {
    assert.deepEqual(parseFrame(new ArrayBuffer(4)), []);
    assert.deepEqual(parseFrame(undefined), []);
    assert.deepEqual(parseFrame(''), []);
  });
});

describe('wsURL', () => {
  it('uses the page origin, wss under https, and escapes the token', () => {
    assert.equal(wsURL({ protocol: 'http:', host: '127.0.0.1:8080' }, 'ab+c/d='), 'ws://127.0.0.1:8080/ws?accessToken=ab%2Bc%2Fd%3D');
    assert.equal(wsURL({ protocol: 'https:', host: 'live.example' }, 't'), 'wss://live.example/ws?accessToken=t');
  });
});

describe('Backoff', () => {
  const sequence = (random, n = 10) => {
    const b = new Backoff({ random: () => random });
    return Array.from({ length: n }, () => b.next());
  };

  it('doubles from 1 s up to 30 s without jitter', () => {
    assert.deepEqual(sequence(0.5), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000]);
  });

  it('spreads each delay by a quarter, never outside 1 s to 30 s', () => {
    assert.deepEqual(sequence(0, 7), [1000, 1500, 3000, 6000, 12000, 22500, 22500]);
    assert.deepEqual(sequence(1, 7), [1250, 2500, 5000, 10000, 20000, 30000, 30000]);
    for (let i = 0; i < 200; i++) {
      const b = new Backoff();
      for (let j = 0; j < 12; j++) {
        const d = b.next();
        assert.ok(d >= 1000 && d <= 30000, `delay ${d}`);
      }
    }
  });

  it('starts over after reset', () => {
    const b = new Backoff({ random: () => 0.5 });
    b.next();
    b.next();
    b.next();
    b.reset();
    assert.equal(b.next(), 1000);
  });

  it('does not overflow after many attempts', () => {
    const b = new Backoff({ random: () => 0.5 });
    for (let i = 0; i < 5000; i++) b.next();
    assert.equal(b.next(), 30000);
  });
});

describe('safeHref', () => {
  it('keeps absolute http and https links, normalised', () => {
    assert.equal(safeHref('https://example.com/a?b=1'), 'https://example.com/a?b=1');
    assert.equal(safeHref(' HTTP://Example.com '), 'http://example.com/');
  });

  it('refuses every other scheme, relative links and junk', () => {
    for (const href of [
      'javascript:alert(1)',
      'JaVaScRiPt:alert(1)',
      ' javascript:alert(1)',
      'java\tscript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'vbscript:msgbox(1)',
      'mailto:a@example.com',
      'ftp://example.com/',
      'file:///etc/passwd',
      'blob:https://example.com/x',
      '//evil.example/x',
      '/relative',
      'example.com',
      '',
      null,
      undefined,
      42,
    ]) {
      assert.equal(safeHref(href), null, String(href));
    }
  });
});

describe('sanitizeHTML', () => {
  const parser = new DOMParser();
  const page = parser.parseFromString('<!doctype html><html><head></head><body></body></html>', 'text/html');
  // serialize writes a tree as HTML with attributes in a fixed order
  // (linkedom keeps them in reverse order of setting).
  const serialize = (node) => {
    if (node.nodeType === 3) return node.nodeValue.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const name = node.tagName.toLowerCase();
    const order = ['href', 'target', 'rel'];
    const attrs = [...node.attributes]
      .sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name))
      .map((a) => ` ${a.name}="${a.value}"`)
      .join('');
    if (name === 'br') return `<br${attrs}>`;
    return `<${name}${attrs}>${[...node.childNodes].map(serialize).join('')}</${name}>`;
  };
  const clean = (html) => [...sanitizeHTML(html, page, parser).childNodes].map(serialize).join('');
  const tree = (html) => {
    const box = page.createElement('div');
    box.appendChild(sanitizeHTML(html, page, parser));
    return box;
  };

  it('keeps the formatting the server produces', () => {
    for (const html of [
      '<p>hello <strong>world</strong></p>',
      '<p><em>a</em> <del>b</del> <code>c</code><br>d</p>',
      '<pre><code>x &lt; y</code></pre>',
      '<p>5 &gt; 3 &amp; 2 &lt; 4</p>',
      '<p>😀 ❤️</p>',
    ]) {
      assert.equal(clean(html), html);
    }
  });

  it('makes http(s) links open in a new tab without a referrer', () => {
    assert.equal(
      clean('<p><a href="https://example.com/x">x</a></p>'),
      '<p><a href="https://example.com/x" target="_blank" rel="nofollow noreferrer noopener">x</a></p>',
    );
  });

  it('unwraps links that are not http(s), keeping their text', () => {
    for (const href of ['javascript:alert(1)', 'data:text/html,x', '/local', 'vbscript:x', '']) {
      assert.equal(clean(`<p><a href="${href}">click</a></p>`), '<p>click</p>', href);
    }
    assert.equal(clean('<a>no href</a>'), 'no href');
  });

  it('copies no attribute but href', () => {
    const out = clean(
      '<p class="x" style="color:red" onclick="alert(1)" id="i"><strong onmouseover="alert(1)" title="t">b</strong>' +
        '<a href="https://example.com/" onclick="alert(1)" style="x" target="_self" rel="opener" ping="https://t.example/">l</a></p>',
    );
    assert.equal(out, '<p><strong>b</strong><a href="https://example.com/" target="_blank" rel="nofollow noreferrer noopener">l</a></p>');
  });

  it('drops scripts and styles, and unwraps other elements to their text', () => {
    const cases = [
      ['<script>window.__xss=1</script><p>ok</p>', '<p>ok</p>'],
      ['<p>a<style>*{color:red}</style>b</p>', '<p>ab</p>'],
      ['<img src=x onerror="window.__xss=1">text', 'text'],
      ['<iframe src="javascript:alert(1)">in</iframe>after', 'after'],
      ['<svg onload="window.__xss=1"><a href="https://example.com/">svg link</a><script>x()</script></svg>', 'svg link'],
      ['<math><mi>x</mi></math>', 'x'],
      ['<div><span>a</span><b>b</b><i>c</i></div>', 'abc'],
      ['<object data="x">fallback</object>', 'fallback'],
      ['<form action="https://evil.example/"><input value="v"><button>go</button></form>', 'go'],
      ['<template><script>x()</script>t</template>shown', 'shown'],
      ['<!-- comment --><p>c</p>', '<p>c</p>'],
      ['<textarea><script>x()</script></textarea>', '&lt;script&gt;x()&lt;/script&gt;'],
      ['<h1>big</h1><ul><li>item</li></ul>', 'bigitem'],
    ];
    for (const [html, want] of cases) {
      assert.equal(clean(html), want, html);
    }
  });

  it('keeps text that looks like markup as text', () => {
    const box = tree('<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>');
    assert.equal(box.querySelector('script'), null);
    assert.equal(box.textContent, '<script>alert(1)</script>');
  });

  it('builds only allowed elements, whatever the input', () => {
    const allowed = new Set(['P', 'BR', 'STRONG', 'EM', 'DEL', 'CODE', 'PRE', 'A']);
    const hostile = [
      '<a href="https://x.example/"><img src=x onerror=alert(1)></a>',
      '<p><a href="https://x.example/"><script>alert(1)</script>t</a></p>',
      '<strong><svg><foreignObject><iframe src="javascript:1"></iframe></foreignObject></svg></strong>',
      '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
      '<svg><p><style><img src=x onerror=alert(1)></style></p></svg>',
      '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
      '<a href="https://x.example/" xlink:href="javascript:alert(1)">x</a>',
      '<base href="https://evil.example/"><link rel=stylesheet href="https://evil.example/x.css"><meta http-equiv=refresh content="0;url=https://evil.example/">',
      '<details open ontoggle=alert(1)>d</details>',
      '<video><source onerror=alert(1)></video><audio src=x onerror=alert(1)>',
      '<embed src="javascript:alert(1)"><object data="javascript:alert(1)"></object>',
    ];
    for (const html of hostile) {
      const box = tree(html);
      for (const el of box.querySelectorAll('*')) {
        assert.ok(allowed.has(el.tagName), `${html} left a <${el.tagName}>`);
        for (const attr of el.attributes) {
          assert.ok(el.tagName === 'A' && ['href', 'target', 'rel'].includes(attr.name), `${html} left ${attr.name} on <${el.tagName}>`);
        }
        if (el.tagName === 'A') assert.match(el.getAttribute('href'), /^https?:\/\//);
      }
    }
  });

  it('flattens absurdly deep nesting to text', () => {
    const deep = '<strong>'.repeat(100) + 'deep' + '</strong>'.repeat(100);
    const box = tree(deep);
    assert.ok(box.querySelectorAll('strong').length <= 32);
    assert.equal(box.textContent, 'deep');
  });

  it('is empty for an empty or missing body', () => {
    assert.equal(clean(''), '');
    assert.equal(clean(undefined), '');
  });
});

describe('ChatModel', () => {
  const me = { id: 'u1', displayName: 'Quiet Heron', displayColor: 3, scopes: [] };
  const other = { id: 'u2', displayName: 'Loud Owl', displayColor: 5 };
  const connected = (user = me) => {
    const m = new ChatModel();
    m.handle({ type: 'CONNECTED_USER_INFO', id: 'e0', user });
    return m;
  };

  it('learns who I am and whether I moderate', () => {
    const m = new ChatModel();
    assert.deepEqual(m.handle({ type: 'CONNECTED_USER_INFO', id: 'e', user: me }), [{ type: 'user' }]);
    assert.deepEqual(m.user, { id: 'u1', displayName: 'Quiet Heron', displayColor: 3, moderator: false });
    m.handle({ type: 'CONNECTED_USER_INFO', id: 'e', user: { ...me, scopes: ['MODERATOR'] } });
    assert.equal(m.user.moderator, true);
  });

  it('turns a CHAT event into a message, marking mine', () => {
    const m = connected();
    const [u] = m.handle({ type: 'CHAT', id: 'm1', timestamp: '2026-11-21T10:00:00Z', user: other, body: '<p>hi</p>', visible: true });
    assert.deepEqual(u, {
      type: 'chat',
      item: { id: 'm1', userId: 'u2', name: 'Loud Owl', color: 5, moderator: false, html: '<p>hi</p>', timestamp: '2026-11-21T10:00:00Z', mine: false },
    });
    assert.equal(m.handle({ type: 'CHAT', id: 'm2', user: me, body: 'x' })[0].item.mine, true);
  });

  it('does not show a message that arrives hidden', () => {
    assert.deepEqual(connected().handle({ type: 'CHAT', id: 'm1', user: other, body: 'x', visible: false }), []);
  });

  it('survives events with missing or wrong fields', () => {
    const m = connected();
    const [u] = m.handle({ type: 'CHAT', id: 5, user: { displayName: 7, displayColor: 99 }, body: { x: 1 } });
    assert.equal(u.item.name, 'Someone');
    assert.equal(u.item.html, '');
    assert.equal(u.item.id, '');
    assert.equal(colorClass(u.item.color), 'chat-color-0');
    assert.deepEqual(m.handle({ type: 'NAME_CHANGE', id: 'n' }), []);
    assert.deepEqual(m.handle({ type: 'VISIBILITY-UPDATE', id: 'v', ids: 'm1' }), []);
    assert.deepEqual(m.handle({ type: 'COLOR_CHANGE', id: 'c' }), []);
    assert.deepEqual(m.handle({ type: 'PING', id: 'p' }), []);
    assert.deepEqual(m.handle({ type: 'SOMETHING_NEW', id: 's' }), []);
    assert.deepEqual(m.handle(null), []);
  });

  it('shows system messages with the server name', () => {
    const [u] = connected().handle({ type: 'SYSTEM', id: 's1', user: { displayName: 'Starling' }, body: '<p>Welcome</p>' });
    assert.equal(u.type, 'system');
    assert.equal(u.item.name, 'Starling');
    assert.equal(u.item.html, '<p>Welcome</p>');
  });

  it('shows joins, parts, renames and stream changes as lines', () => {
    const m = connected();
    assert.equal(m.handle({ type: 'USER_JOINED', id: 'j', user: other })[0].item.text, 'Loud Owl joined');
    assert.equal(m.handle({ type: 'USER_PARTED', id: 'p', user: other })[0].item.text, 'Loud Owl left');
    const rename = m.handle({ type: 'NAME_CHANGE', id: 'n', user: { ...other, displayName: 'Owl 2' }, oldName: 'Loud Owl' });
    assert.deepEqual(rename, [{ type: 'line', item: { id: 'n', kind: 'rename', text: 'Loud Owl is now Owl 2' } }]);
    const fromHistory = m.handle({ type: 'NAME_CHANGE', id: 'n2', user: { ...other, displayName: 'C', previousNames: ['A', 'B', 'C'] } });
    assert.equal(fromHistory[0].item.text, 'B is now C');
    assert.deepEqual(m.handle({ type: 'STREAM_STARTED', id: 's' })[1], { type: 'stream', live: true });
    assert.deepEqual(m.handle({ type: 'STREAM_STOPPED', id: 's' })[1], { type: 'stream', live: false });
  });

  it('shows fediverse engagement as text lines, whatever the remote sent', () => {
    const m = connected();
    const [like] = m.handle({ type: 'FEDIVERSE_ENGAGEMENT_LIKE', id: 'f1', title: 'ann@social.example', body: '<p>x</p>' });
    assert.deepEqual(like, { type: 'line', item: { id: 'f1', kind: 'fediverse', text: 'ann@social.example liked that this stream went live' } });
    const [boost] = m.handle({ type: 'FEDIVERSE_ENGAGEMENT_REPOST', id: 'f2', title: '<img src=x onerror=alert(1)>' });
    assert.equal(boost.item.text, '<img src=x onerror=alert(1)> shared this stream with their followers');
    assert.equal(boost.item.html, undefined);
    assert.equal(m.handle({ type: 'FEDIVERSE_ENGAGEMENT_FOLLOW', id: 'f3' })[0].item.text, 'Someone on the fediverse followed this stream');
  });

  it('follows my own renames and colour changes', () => {
    const m = connected();
    const updates = m.handle({ type: 'NAME_CHANGE', id: 'n', user: { ...me, displayName: 'Loud Heron' }, oldName: 'Quiet Heron' });
    assert.deepEqual(
      updates.map((u) => u.type),
      ['line', 'user'],
    );
    assert.equal(m.user.displayName, 'Loud Heron');
    m.handle({ type: 'COLOR_CHANGE', id: 'c', user: { ...me, displayColor: 6 } });
    assert.equal(m.user.displayColor, 6);
    m.handle({ type: 'COLOR_CHANGE', id: 'c', user: { ...other, displayColor: 1 } });
    assert.equal(m.user.displayColor, 6);
  });

  it('passes visibility updates on', () => {
    const m = connected();
    assert.deepEqual(m.handle({ type: 'VISIBILITY-UPDATE', id: 'v', ids: ['m1', 'm2', 3], visible: false }), [
      { type: 'visibility', ids: ['m1', 'm2'], visible: false },
    ]);
    assert.equal(m.handle({ type: 'VISIBILITY-UPDATE', id: 'v', ids: ['m1'], visible: true })[0].visible, true);
  });

  it('turns error codes into notices a viewer understands', () => {
    const m = connected();
    const [u] = m.handle({ type: 'CHAT_ACTION', id: 'a', error: 'RATE_LIMITED', body: 'slow down' });
    assert.equal(u.type, 'notice');
    assert.equal(u.code, 'RATE_LIMITED');
    assert.equal(u.text, "You're sending messages too fast — wait a moment.");
    const [unknown] = m.handle({ type: 'CHAT_ACTION', id: 'a', error: 'NEW_CODE', body: '<p>Server says no</p>' });
    assert.equal(unknown.text, null);
    assert.equal(unknown.html, '<p>Server says no</p>');
    for (const code of ['BAD_MESSAGE', 'MESSAGE_TOO_LONG', 'EMPTY_MESSAGE', 'FLOODING', 'CHAT_OFF', 'NAME_TAKEN', 'NAME_FORBIDDEN', 'NAME_INVALID', 'COLOR_INVALID']) {
      assert.ok(ERROR_TEXT[code], code);
    }
    const [action] = m.handle({ type: 'CHAT_ACTION', id: 'b', body: '<p>Owl was made a moderator</p>' });
    assert.deepEqual(action, { type: 'line', item: { id: 'b', kind: 'action', html: '<p>Owl was made a moderator</p>' } });
  });

  it('follows the chat status into the view state', () => {
    const m = connected();
    assert.equal(viewState(m, 'open'), 'open');
    m.handle({ type: 'CHAT_STATUS', id: 's', enabled: false, reason: 'Chat opens when the stream starts' });
    assert.equal(viewState(m, 'open'), 'off');
    assert.equal(m.reason, 'Chat opens when the stream starts');
    assert.equal(viewState(m, 'closed'), 'closed');
    m.handle({ type: 'CHAT_STATUS', id: 's', enabled: true });
    assert.equal(viewState(m, 'open'), 'open');
    assert.equal(m.reason, '');
  });

  it('asks to register again, or stops for good when disabled', () => {
    const m = connected();
    assert.deepEqual(m.handle({ type: 'ERROR_NEEDS_REGISTRATION', id: 'e' }), [{ type: 'reregister' }]);
    assert.deepEqual(m.handle({ type: 'ERROR_MAX_CONNECTIONS_EXCEEDED', id: 'e' }), [{ type: 'full' }]);
    assert.deepEqual(m.handle({ type: 'ERROR_USER_DISABLED', id: 'e' }), [{ type: 'disabled' }]);
    for (const c of ['connecting', 'open', 'closed']) assert.equal(viewState(m, c), 'disabled');
  });
});

describe('composer helpers', () => {
  it('inserts at the caret, replacing a selection', () => {
    assert.deepEqual(insertAt('hello world', 5, 5, '😀'), { value: 'hello😀 world', caret: 7 });
    assert.deepEqual(insertAt('hello world', 6, 11, '🔥'), { value: 'hello 🔥', caret: 8 });
    assert.deepEqual(insertAt('abc', undefined, undefined, '!'), { value: 'abc!', caret: 4 });
  });

  it('refuses an insertion past the limit', () => {
    assert.equal(insertAt('x'.repeat(MAX_BODY - 1), MAX_BODY - 1, MAX_BODY - 1, '😀'), null);
    assert.ok(insertAt('x'.repeat(MAX_BODY - 2), 0, 0, '😀'));
  });

  it('counts down only near the limit', () => {
    assert.equal(counterText(0), '');
    assert.equal(counterText(399), '');
    assert.equal(counterText(400), '100 characters left');
    assert.equal(counterText(499), '1 character left');
    assert.equal(counterText(500), '0 characters left');
  });

  it('maps colours 0 to 7 to classes, anything else to 0', () => {
    for (let i = 0; i <= 7; i++) assert.equal(colorClass(i), `chat-color-${i}`);
    for (const c of [-1, 8, 1.5, '3', null, undefined]) assert.equal(colorClass(c), 'chat-color-0');
  });

  it('offers about forty distinct emoji with labels', () => {
    assert.ok(EMOJI.length >= 36 && EMOJI.length <= 48, `${EMOJI.length} emoji`);
    assert.equal(new Set(EMOJI.map(([c]) => c)).size, EMOJI.length);
    for (const [char, label] of EMOJI) {
      assert.ok(char && !/[a-z0-9<>&]/i.test(char), char);
      assert.ok(label.length > 2, char);
    }
  });
});
