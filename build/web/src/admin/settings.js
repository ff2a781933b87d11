// The settings pages: every setting of the admin API as a form. Each
// field saves on its own (or a group as one value), is applied live, and
// shows the server's message beside it when refused.
import { useState } from 'preact/hooks';
import { get, post, setConfig } from './api.js';
import { PRESETS, presetVariant, randomKey } from './format.js';
import { PAGE_TAGS, sanitizeHTML } from '../chat.js';
import { Card, Composite, html, Loading, Rows, Setting, SaveBar, useAsync, useSave } from './ui.js';

const serverConfig = () => get('/api/admin/serverconfig');

// Page loads the server's settings and hands them to body.
function Page({ body }) {
  const [state, reload] = useAsync(serverConfig);
  return html`<${Loading} state=${state}>${(c) => body(c, reload)}<//>`;
}

const NEXT_BROADCAST = 'Applies from the next broadcast: the one live now keeps its settings.';

function MarkdownPreview({ text }) {
  const [preview, setPreview] = useState(null);
  const [error, setError] = useState(null);
  const show = async () => {
    try {
      const r = await post('/api/admin/preview/markdown', { value: text });
      setPreview(r.html);
      setError(null);
    } catch (e) {
      setError(e.message);
    }
  };
  return html`<div class="preview">
    <button type="button" class="secondary" onClick=${show}>Preview</button>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${preview !== null &&
    html`<div class="markdown" aria-label="Preview" ref=${(el) => el && el.replaceChildren(sanitizeHTML(preview, document, new DOMParser(), PAGE_TAGS))}></div>`}
  </div>`;
}

function PageContent({ value }) {
  const [text, setText] = useState(value);
  const save = useSave();
  return html`<div class="setting composite">
    <h3><label for="pagecontent">About page (Markdown)</label></h3>
    <p class="help">Shown under the player. Rendered and sanitised by the server: no scripts, no styles.</p>
    <textarea id="pagecontent" rows="10" value=${text} onInput=${(e) => setText(e.target.value)} />
    <${MarkdownPreview} text=${text} />
    <${SaveBar} save=${save} onSave=${() => save.run(() => setConfig('pagecontent', text)).catch(() => {})} />
  </div>`;
}

function Logo() {
  const save = useSave();
  const [version, setVersion] = useState(0);
  const upload = (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () =>
      save
        .run(() => setConfig('logo', reader.result), 'Logo changed')
        .then(() => setVersion((v) => v + 1))
        .catch(() => {});
    reader.readAsDataURL(file);
  };
  return html`<div class="setting">
    <label for="logo">Logo</label>
    <p class="help">PNG, JPEG, GIF or WebP, at most 2 MiB. It is also the fediverse account's avatar.</p>
    <div class="row"><img class="logo" src=${'/logo?v=' + version} alt="The current logo" width="64" height="64" />
      <input id="logo" type="file" accept="image/png,image/jpeg,image/gif,image/webp" onChange=${upload} disabled=${save.busy} /></div>
    ${save.status && html`<span class=${'status ' + save.status.kind} role=${save.status.kind === 'error' ? 'alert' : 'status'}>${save.status.text}</span>`}
  </div>`;
}

export function General() {
  return html`<${Page} body=${(c) => {
    const d = c.instanceDetails;
    return html`<${Card} title="General" wide>
      <${Setting} label="Server name" path="name" value=${d.name} />
      <${Setting} label="Stream title" path="streamtitle" value=${d.streamTitle} />
      <${Setting} label="Summary" path="serversummary" value=${d.summary} kind="textarea" help="A line or two about the stream; Markdown." />
      <${Logo} />
      <${Setting} label="Tags" path="tags" value=${d.tags} kind="list" help="One a line: they become the go-live post's hashtags." />
      <${Setting} label="Not safe for work" path="nsfw" value=${d.nsfw} kind="bool" help="Viewers see a notice before the stream plays." />
      <${Composite} title="Social links" path="socialhandles" value=${d.socialHandles}
        render=${(rows, set) => html`<${Rows} rows=${rows} setRows=${set} blank=${{ platform: '', url: '' }} addLabel="Add a link"
          fields=${[{ key: 'platform', label: 'Platform', placeholder: 'mastodon' }, { key: 'url', label: 'URL', placeholder: 'https://' }]} />`} />
      <${PageContent} value=${d.extraPageContent} />
      <${Setting} label="Offline message" path="offlinemessage" value=${d.offlineMessage} kind="textarea" />
      <${Setting} label="Welcome message" path="welcomemessage" value=${d.welcomeMessage} kind="textarea" help="Sent to each viewer who joins the chat." />
    <//>`;
  }} />`;
}

export function Appearance() {
  return html`<${Page} body=${(c) => {
    const d = c.instanceDetails;
    const vars = Object.entries(d.appearanceVariables || {}).map(([name, value]) => ({ name, value }));
    return html`<${Card} title="Appearance" wide>
      <${Composite} title="Colours" path="appearance" value=${vars}
        help="CSS variables of the viewer page, such as --theme-color-background-main."
        toValue=${(rows) => Object.fromEntries(rows.filter((r) => r.name).map((r) => [r.name.trim(), r.value.trim()]))}
        render=${(rows, set) => html`<${Rows} rows=${rows} setRows=${set} blank=${{ name: '--', value: '' }} addLabel="Add a variable"
          fields=${[{ key: 'name', label: 'Variable' }, { key: 'value', label: 'Value', placeholder: '#223344' }]} />`} />
      <${Setting} label="Custom CSS" path="customstyles" value=${d.customStyles} kind="textarea" rows=${8} />
      <${Setting} label="Custom JavaScript" path="customjavascript" value=${d.customJavascript} kind="textarea" rows=${8}
        help="Runs on the viewer page as its own script; the page's Content-Security-Policy still allows nothing else." />
      <${Composite} title="External actions" path="externalactions" value=${c.externalActions || []}
        help="Buttons on the viewer page that open a link."
        render=${(rows, set) => html`<${Rows} rows=${rows} setRows=${set} blank=${{ title: '', url: '', description: '', color: '', openExternally: true }} addLabel="Add a button"
          fields=${[{ key: 'title', label: 'Title' }, { key: 'url', label: 'URL', placeholder: 'https://' }, { key: 'description', label: 'Description' }, { key: 'color', label: 'Colour' }, { key: 'openExternally', label: 'New tab', kind: 'bool' }]} />`} />
    <//>`;
  }} />`;
}

function StreamKeys({ keys }) {
  const [rows, setRows] = useState(keys);
  const [shown, setShown] = useState({});
  const save = useSave();
  const commit = (next) =>
    save
      .run(() => setConfig('streamkeys', next), 'Stream keys saved')
      .then(() => setRows(next))
      .catch(() => {});
  const [comment, setComment] = useState('');
  return html`<div class="setting composite">
    <h3>Stream keys</h3>
    <p class="help">Any of them publishes. Revoking the one in use ends its broadcast.</p>
    <ul class="keys">
      ${rows.map(
        (k, i) => html`<li>
          <code class=${shown[i] ? '' : 'secret'}>${shown[i] ? k.key : '••••••••••••'}</code>
          <span>${k.comment}</span>
          <button type="button" class="secondary" onClick=${() => setShown({ ...shown, [i]: !shown[i] })}>${shown[i] ? 'Hide' : 'Show'}</button>
          <button type="button" class="secondary" onClick=${() => navigator.clipboard && navigator.clipboard.writeText(k.key)}>Copy</button>
          <button type="button" class="danger" data-revoke=${k.comment} onClick=${() => commit(rows.filter((_, j) => j !== i))} disabled=${rows.length === 1}>Revoke</button>
        </li>`,
      )}
    </ul>
    <div class="row">
      <label for="newkey-comment">Comment for a new key</label>
      <input id="newkey-comment" value=${comment} onInput=${(e) => setComment(e.target.value)} placeholder="OBS at home" />
      <button type="button" onClick=${() => commit(rows.concat([{ key: randomKey(), comment: comment || 'Generated in the admin' }]))}>Generate a key</button>
    </div>
    ${save.status && html`<span class=${'status ' + save.status.kind} role=${save.status.kind === 'error' ? 'alert' : 'status'}>${save.status.text}</span>`}
  </div>`;
}

// core.LatencyLevels; the latencies and offloads measured for each are in
// the README.
const LATENCY = [
  { value: 0, label: '0: lowest latency, little sharing (1 s segments, 2 behind live)' },
  { value: 1, label: '1: low latency, the default (1 s segments, 3 behind live)' },
  { value: 2, label: '2: balanced (2 s segments, 3 behind live)' },
  { value: 3, label: '3: more buffer (2 s segments, 4 behind live)' },
  { value: 4, label: '4: most buffer (4 s segments, 4 behind live)' },
];

function AdminPassword() {
  const [pw, setPW] = useState('');
  const [again, setAgain] = useState('');
  const save = useSave();
  const submit = (e) => {
    e.preventDefault();
    if (pw !== again) {
      save.setStatus({ kind: 'error', text: 'The two passwords differ.' });
      return;
    }
    save
      .run(() => setConfig('adminpass', pw), 'Password changed: log in again with it.')
      .then(() => setTimeout(() => window.location.assign('/admin/login'), 1500), () => {});
  };
  return html`<form class="setting composite" onSubmit=${submit}>
    <h3>Admin password</h3>
    <p class="help">At least 8 characters. Every session ends, this one too; scripts need the new one.</p>
    <div class="grid">
      <label class="cell" for="adminpass">New password<input id="adminpass" type="password" autocomplete="new-password" value=${pw} onInput=${(e) => setPW(e.target.value)} /></label>
      <label class="cell" for="adminpass2">Again<input id="adminpass2" type="password" autocomplete="new-password" value=${again} onInput=${(e) => setAgain(e.target.value)} /></label>
    </div>
    <button type="submit" disabled=${save.busy || !pw}>Change the password</button>
    ${save.status && html`<span class=${'status ' + save.status.kind} role=${save.status.kind === 'error' ? 'alert' : 'status'}>${save.status.text}</span>`}
  </form>`;
}

export function Server() {
  return html`<${Page} body=${(c) => html`<${Card} title="Server" wide>
    <${Setting} label="Server URL" path="serverurl" value=${c.serverURL} placeholder="https://live.example.com"
      help="The address viewers use, https behind a reverse proxy: links and the fediverse account are made from it." />
    <${StreamKeys} keys=${c.streamKeys} />
    <${Setting} label="Latency level" path="video/streamlatencylevel" value=${c.videoSettings.latencyLevel} kind="select" options=${LATENCY}
      toValue=${Number} help=${NEXT_BROADCAST} />
    <${Setting} label="Ask search engines not to index the page" path="disablesearchindexing" value=${c.disableSearchIndexing} kind="bool" />
    <${Setting} label="Hide the viewer count" path="hideviewercount" value=${c.hideViewerCount} kind="bool" />
    <${Setting} label="Video serving endpoint (CDN)" path="videoservingendpoint" value=${c.videoServingEndpoint} placeholder="https://cdn.example.com" />
    <${Setting} label="Chat host override" path="sockethostoverride" value=${c.socketHostOverride} placeholder="wss://chat.example.com"
      help="Where pages connect for chat, when that is not this server." />
    <${AdminPassword} />
    <p class="help">The web and RTMP addresses and ffmpeg are set when Starling starts (--http, --rtmp, --ffmpeg).</p>
  <//>`} />`;
}

const VARIANT_FIELDS = [
  { key: 'name', label: 'Name' },
  { key: 'videoPassthrough', label: 'Pass the video through', kind: 'bool' },
  { key: 'videoBitrate', label: 'Video kbit/s', kind: 'number' },
  { key: 'scaledHeight', label: 'Height (0: source)', kind: 'number' },
  { key: 'framerate', label: 'Frame rate', kind: 'number' },
  { key: 'audioPassthrough', label: 'Pass the audio through', kind: 'bool' },
  { key: 'audioBitrate', label: 'Audio kbit/s', kind: 'number' },
  {
    key: 'cpuUsageLevel',
    label: 'Encoder effort',
    kind: 'select',
    number: true,
    options: ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast'].map((p, v) => ({ value: v, label: `${v}: ${p}` })),
  },
];

export function Video() {
  return html`<${Page} body=${(c) => html`<${Card} title="Video" wide>
    <p class="note">${NEXT_BROADCAST}</p>
    <${Composite} title="Renditions" path="video/streamoutputvariants" value=${c.videoSettings.videoQualityVariants}
      help="Each rendition is one quality viewers can pick. Passthrough sends your encoder's video as it is: no CPU, one quality."
      render=${(rows, set) => html`<div>
        <${Rows} rows=${rows} setRows=${set} blank=${presetVariant('720p')} addLabel="Add a rendition" fields=${VARIANT_FIELDS} />
        <div class="row presets"><span>Presets:</span>${PRESETS.map((p) => html`<button type="button" class="secondary" onClick=${() => set(rows.concat([presetVariant(p.name)]))}>${p.name}</button>`)}</div>
      </div>`} />
    <${Composite} title="Segments" path="video/segments"
      value=${{ segmentSeconds: c.videoSettings.segmentSeconds, playlistSegments: c.videoSettings.playlistSegments }}
      help=${'What the latency level sets, set by hand. ' + NEXT_BROADCAST}
      render=${(v, set) => html`<div class="grid">
        <label class="cell" for="seg-seconds">Segment length (s)<input id="seg-seconds" type="number" value=${v.segmentSeconds} onInput=${(e) => set({ ...v, segmentSeconds: Number(e.target.value) })} /></label>
        <label class="cell" for="seg-count">Segments in the playlist<input id="seg-count" type="number" value=${v.playlistSegments} onInput=${(e) => set({ ...v, playlistSegments: Number(e.target.value) })} /></label>
      </div>`} />
    <${Setting} label="H.264 encoder" path="video/codec" value=${c.videoCodec} kind="select"
      options=${(c.supportedCodecs || ['libx264']).map((v) => ({ value: v, label: v }))} help="Only encoders that work on this machine are listed." />
  <//>`} />`;
}

function S3Form({ s3 }) {
  const [form, setForm] = useState({ ...s3, secret: '' });
  const save = useSave();
  const test = useSave();
  const [report, setReport] = useState(null);
  const field = (key, label, kind = 'text') => {
    const id = 's3-' + key;
    if (kind === 'bool') {
      return html`<label class="inline" for=${id}><input id=${id} type="checkbox" checked=${!!form[key]} onChange=${(e) => setForm({ ...form, [key]: e.target.checked })} /> ${label}</label>`;
    }
    return html`<label class="cell" for=${id}>${label}<input id=${id} type=${kind} value=${form[key] ?? ''} autocomplete="off" onInput=${(e) => setForm({ ...form, [key]: e.target.value })} /></label>`;
  };
  const value = () => {
    const v = { ...form };
    if (!v.secret) delete v.secret; // keep the stored one
    return v;
  };
  return html`<div class="setting composite">
    <h3>S3-compatible bucket</h3>
    <p class="help">${NEXT_BROADCAST} The secret is kept with the other secrets and never shown again; leave it empty to keep it.</p>
    <div class="grid">
      ${field('enabled', 'Store segments in the bucket', 'bool')}
      ${field('endpoint', 'Endpoint')} ${field('bucket', 'Bucket')} ${field('region', 'Region')}
      ${field('accessKey', 'Access key')} ${field('secret', 'Secret key', 'password')}
      ${field('acl', 'ACL')} ${field('pathPrefix', 'Path prefix')} ${field('servingEndpoint', 'Serving endpoint (CDN)')}
      ${field('forcePathStyle', 'Path-style URLs', 'bool')}
    </div>
    <div class="row">
      <button type="button" class="secondary" disabled=${test.busy}
        onClick=${() => test.run(() => post('/api/admin/storage/test', { value: value() }), 'Test done').then(setReport, (e) => setReport(null))}>Test the connection</button>
      <button type="button" disabled=${save.busy} onClick=${() => save.run(() => setConfig('s3', value())).catch(() => {})}>Save</button>
    </div>
    ${test.status && test.status.kind === 'error' && html`<p class="error" role="alert">${test.status.text}</p>`}
    ${report && html`<div role="status"><ul>${(report.passed || []).map((p) => html`<li class="ok">✓ ${p}</li>`)}${(report.warnings || []).map((w) => html`<li class="warn">⚠ ${w}</li>`)}</ul></div>`}
    ${save.status && html`<span class=${'status ' + save.status.kind} role=${save.status.kind === 'error' ? 'alert' : 'status'}>${save.status.text}</span>`}
  </div>`;
}

export function Storage() {
  return html`<${Page} body=${(c) => html`<${Card} title="Storage" wide><${S3Form} s3=${c.s3} /><//>`} />`;
}

export function P2P() {
  return html`<${Page} body=${(c) => html`<${Card} title="Peer-to-peer" wide>
    <${Composite} title="Sharing between viewers" path="p2p" value=${c.p2p}
      help="Viewers fetch segments from each other over WebRTC, the server's copy always there as the fallback."
      render=${(v, set) => html`<div class="grid">
        <label class="inline" for="p2p-enabled"><input id="p2p-enabled" type="checkbox" checked=${v.enabled} onChange=${(e) => set({ ...v, enabled: e.target.checked })} /> Viewers share segments</label>
        <label class="cell" for="p2p-window">High-demand window (s)<input id="p2p-window" type="number" step="0.5" value=${v.highDemandTimeWindow} onInput=${(e) => set({ ...v, highDemandTimeWindow: Number(e.target.value) })} /></label>
        <label class="cell" for="p2p-sync">Segments behind live<input id="p2p-sync" type="number" value=${v.liveSyncDurationCount} onInput=${(e) => set({ ...v, liveSyncDurationCount: Number(e.target.value) })} /></label>
        <label class="cell" for="p2p-http">Simultaneous HTTP downloads<input id="p2p-http" type="number" value=${v.simultaneousHttpDownloads} onInput=${(e) => set({ ...v, simultaneousHttpDownloads: Number(e.target.value) })} /></label>
        <div class="wide">
          <p>STUN and TURN servers (one URL a row; TURN credentials reach every viewer)</p>
          <${Rows} rows=${(v.iceServers || []).map((s) => ({ urls: (s.urls || []).join(' '), username: s.username || '', credential: s.credential || '' }))}
            setRows=${(rows) => set({ ...v, iceServers: rows.map((r) => ({ urls: r.urls.split(/\s+/).filter(Boolean), username: r.username, credential: r.credential })) })}
            blank=${{ urls: 'stun:', username: '', credential: '' }} addLabel="Add a server"
            fields=${[{ key: 'urls', label: 'URLs' }, { key: 'username', label: 'User' }, { key: 'credential', label: 'Credential' }]} />
        </div>
      </div>`} />
  <//>`} />`;
}

export function ChatSettings() {
  return html`<${Page} body=${(c) => html`<${Card} title="Chat" wide>
    <${Setting} label="Chat off" path="chat/disable" value=${c.chatDisabled} kind="bool" />
    <${Setting} label="Chat only while live" path="chat/liveonly" value=${c.chatLiveOnly} kind="bool" />
    <${Setting} label="Announce joins and leaves" path="chat/joinmessagesenabled" value=${c.chatJoinMessagesEnabled} kind="bool" />
    <${Setting} label="Established users only" path="chat/establishedusermode" value=${c.chatEstablishedUserMode} kind="bool"
      help="Users who registered minutes ago cannot talk: a raid of new accounts stays quiet." />
    <${Setting} label="Forbidden names" path="chat/forbiddenusernames" value=${c.forbiddenUsernames} kind="list" />
    <${Setting} label="Suggested names" path="chat/suggestedusernames" value=${c.suggestedUsernames} kind="list" help="With ten or more, new users are named from these." />
  <//>`} />`;
}

export function Notifications() {
  return html`<${Page} body=${(c) => html`<${Card} title="Notifications" wide>
    <${Composite} title="Discord" path="notifications/discord" value=${c.notifications.discord} help="A post to a channel's webhook when a broadcast starts."
      render=${(v, set) => html`<div class="grid">
        <label class="inline" for="discord-on"><input id="discord-on" type="checkbox" checked=${v.enabled} onChange=${(e) => set({ ...v, enabled: e.target.checked })} /> Post to Discord</label>
        <label class="cell" for="discord-url">Webhook URL<input id="discord-url" value=${v.webhook} onInput=${(e) => set({ ...v, webhook: e.target.value })} /></label>
        <label class="cell" for="discord-msg">Message<input id="discord-msg" value=${v.goLiveMessage} onInput=${(e) => set({ ...v, goLiveMessage: e.target.value })} /></label>
      </div>`} />
    <p class="help">The fediverse's go-live post is on the Fediverse page.</p>
  <//>`} />`;
}
