/*! Starling viewer page. Bundles hls.js (Apache-2.0, Copyright Dailymotion),
 * p2p-media-loader (Apache-2.0, Copyright Novage), @noble/hashes (MIT) and
 * their dependencies; the list and the licence texts are at
 * /third-party-licenses.txt */

// The viewer page: polls /api/status and plays /hls/stream.m3u8 with hls.js
// (or natively on Safari) whenever the stream is live. The viewer never has to
// reload: the player is torn down when the stream ends and rebuilt when it
// comes back. When the server enables it, viewers also share segments with
// each other (src/p2p.js).
import Hls from 'hls.js';
import { HlsJsP2PEngine } from 'p2p-media-loader-hlsjs';
import { startChat } from './chat.js';
import * as p2p from './p2p.js';
import { TamperingSegmentStorage } from './tamper.js';

// Replaced at build time (build.mjs) by the URL of the content-hashed copy of
// hls.js's worker. The ES module build of hls.js has no inline worker.
/* global __HLS_WORKER_URL__ */
const HLS_WORKER_URL = __HLS_WORKER_URL__;

const STREAM_URL = '/hls/stream.m3u8';
const THUMBNAIL_URL = '/thumbnail.jpg';
const FALLBACK_NAME = 'Starling';
const POLL_MS = 5000;
const FETCH_TIMEOUT_MS = 8000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 4000; // a playlist that 404s is cheap to ask for again

const $ = (id) => document.getElementById(id);
const ui = {
  video: $('player'),
  serverName: $('server-name'),
  badge: $('live-badge'),
  offline: $('offline'),
  offlineHeading: $('offline-heading'),
  offlineMessage: $('offline-message'),
  offlinePoster: $('offline-poster'),
  spinner: $('spinner'),
  unmute: $('unmute'),
  title: $('stream-title'),
  status: $('status'),
  viewers: $('viewers'),
  summary: $('summary'),
  version: $('version'),
  p2p: $('p2p'),
  p2pShare: $('p2p-share'),
  p2pRatio: $('p2p-ratio'),
};
const video = ui.video;

let config = null; // last /api/config, null until it loads
let status = null; // last good /api/status, null until one arrives
let clockSkewMs = 0; // server clock minus ours, so "Live for" is right on a wrong local clock

// 'online' while we want a player. Follows status.online, except that a
// session whose playlist ended (#EXT-X-ENDLIST) stays offline even while a
// stale status still says online; otherwise we would replay it from its start.
let state = 'offline';
let endedSession; // lastConnectTime of that ended session; undefined if none

let hls = null; // current hls.js instance, null on the native path or offline
let nativeActive = false; // true while Safari plays STREAM_URL natively
let unsupported = false; // the browser can play HLS neither way
let retryTimer = 0;
let retryDelayMs = RETRY_MIN_MS;
let mediaErrors = 0; // fatal media errors seen by the current player

// P2P. The page's totals outlive its players; playerId tells the current
// player's events from a destroyed one's.
const HlsWithP2P = HlsJsP2PEngine.injectMixin(Hls);
const stats = new p2p.PlaybackStats();
const prefs = p2p.storageOr(() => localStorage);
const viewer = p2p.viewerId(p2p.storageOr(() => sessionStorage));
// Integrity tests only: ?p2pTamper=1 corrupts every segment this page uploads
// (src/tamper.js).
const tamper = new URLSearchParams(location.search).get('p2pTamper') === '1';
let playerId = 0;
let playerMode = null; // p2p.shareMode() of the current hls.js player, 'off' without P2P
let statsTimer = 0;
let statsTicks = 0;
let lastReport = JSON.stringify(stats.report(viewer)); // last totals posted; nothing to say yet

// ---------------------------------------------------------------- player

const HLS_CONFIG = {
  liveSyncDurationCount: 3,
  enableWorker: true,
  workerPath: HLS_WORKER_URL,
  lowLatencyMode: false,
  backBufferLength: 30,
};

// wantedMode is how the next player takes part in P2P: 'off' unless the
// server enables it, else the viewer's choice (p2p.shareMode).
function wantedMode() {
  if (!p2p.p2pSettings(config)) return 'off';
  return p2p.shareMode(prefs, navigator.connection);
}

// createPlayer builds a fresh player for STREAM_URL. It is the one place that
// configures hls.js.
function createPlayer() {
  destroyPlayer();
  mediaErrors = 0;
  ui.spinner.hidden = false;
  const id = ++playerId;

  if (Hls.isSupported()) {
    const settings = p2p.p2pSettings(config);
    playerMode = wantedMode();
    if (playerMode === 'off') {
      hls = new Hls(HLS_CONFIG);
      // Without the P2P engine, hls.js's own loader fetches every segment.
      hls.on(Hls.Events.FRAG_LOADED, (_event, data) => {
        if (id === playerId) stats.httpBytes += data.frag.stats.total || data.payload.byteLength || 0;
      });
    } else {
      hls = new HlsWithP2P({
        ...HLS_CONFIG,
        // Explicit, or the engine pushes latency back by itself once the
        // playlist has more than 4 segments (shared/notes/p2p.md §2.1).
        liveSyncDurationCount: settings.liveSyncDurationCount,
        p2p: {
          core: p2p.coreConfig(settings, {
            tracker: p2p.trackerUrl(location, settings.trackerPath),
            mode: playerMode,
            validateP2PSegment: validator,
            customSegmentStorageFactory: tamper ? () => new TamperingSegmentStorage() : undefined,
          }),
          onHlsJsCreated(h) {
            p2p.keepSegmentsForPeers(h);
            stats.watch(h.p2pEngine, () => id === playerId);
          },
        },
      });
    }
    stats.enabled = playerMode !== 'off';
    hls.on(Hls.Events.ERROR, onHlsError);
    // The last segment of a playlist with #EXT-X-ENDLIST is buffered: the
    // broadcaster stopped.
    hls.on(Hls.Events.BUFFER_EOS, onStreamEnded);
    hls.loadSource(STREAM_URL);
    hls.attachMedia(video);
    startStats();
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    nativeActive = true;
    video.src = STREAM_URL;
  } else {
    unsupported = true;
    ui.spinner.hidden = true;
    return;
  }
  play();
}

// Browsers allow autoplay only while muted, and the page starts muted. A
// viewer who unmuted earlier may be refused when the player is rebuilt; fall
// back to muted (the Unmute button comes back). If even that is refused, the
// native controls let the viewer press play.
function play() {
  video.play().catch((err) => {
    if (err.name !== 'NotAllowedError' || video.muted) return;
    video.muted = true;
    video.play().catch(() => {});
  });
}

function destroyPlayer() {
  clearTimeout(retryTimer);
  playerId++;
  if (hls) {
    hls.destroy();
    hls = null;
  }
  playerMode = null;
  stats.enabled = false;
  stats.peers.clear();
  stopStats();
  nativeActive = false;
  ui.spinner.hidden = true;
  video.playbackRate = 1; // steerLatency's, for the next player to start from
  if (video.hasAttribute('src')) {
    video.removeAttribute('src');
    video.load(); // drops the buffered media and stops any download
  }
}

// retryLater rebuilds the player after a growing delay, as long as the
// stream is still meant to be online. Right after going live the playlist
// 404s until ffmpeg has written its first segment, so this is the normal
// start-up path, not only a failure path.
function retryLater() {
  destroyPlayer();
  if (state !== 'online') return;
  ui.spinner.hidden = false;
  retryTimer = setTimeout(() => {
    if (state === 'online') createPlayer();
  }, retryDelayMs);
  retryDelayMs = Math.min(retryDelayMs * 2, RETRY_MAX_MS);
}

function onHlsError(_event, data) {
  if (!data.fatal) {
    console.debug('hls.js:', data.details);
    return;
  }
  if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaErrors < 2) {
    // hls.js's documented recovery ladder: recover, then swap the audio
    // codec (mislabelled AAC profiles) and recover, then start over.
    mediaErrors++;
    if (mediaErrors === 2) hls.swapAudioCodec();
    hls.recoverMediaError();
    return;
  }
  console.debug('hls.js fatal:', data.type, data.details);
  retryLater();
}

function onStreamEnded() {
  endedSession = status ? status.lastConnectTime : null;
  setState('offline');
}

video.addEventListener('ended', () => {
  if (state === 'online') onStreamEnded();
});
video.addEventListener('error', () => {
  // hls.js reports media errors itself; this is for the native (Safari) path.
  if (nativeActive) retryLater();
});
video.addEventListener('playing', () => {
  retryDelayMs = RETRY_MIN_MS;
  ui.spinner.hidden = true;
});

// steerLatency keeps the player near hls.js's target latency by easing the
// playback rate. A viewer more than a second behind (a stall, a paused
// tab) catches up at 1.1x. A P2P viewer who is ahead of the target slows to 0.9x until it
// is back: one who arrived while the playlist was still short starts
// closer to the live edge than liveSyncDurationCount, where segments only
// come over HTTP, and would otherwise never share. Audio keeps its pitch.
function steerLatency() {
  if (!hls || video.paused) return;
  const target = hls.targetLatency;
  const off = hls.latency - target;
  if (!target || !Number.isFinite(off)) return;
  let rate = video.playbackRate;
  if (rate === 1) {
    if (off > 1) rate = 1.1;
    else if (off < -1 && playerMode !== 'off') rate = 0.9;
  } else if ((rate > 1 && off <= 0) || (rate < 1 && off >= 0)) {
    rate = 1;
  }
  if (rate !== video.playbackRate) video.playbackRate = rate;
}
video.addEventListener('timeupdate', steerLatency);
video.addEventListener('waiting', () => {
  ui.spinner.hidden = state !== 'online';
});
for (const type of ['play', 'playing', 'pause', 'volumechange', 'emptied']) {
  video.addEventListener(type, updateUnmute);
}

// Autoplay requires muted; offer a one-click way out while it plays muted.
function updateUnmute() {
  ui.unmute.hidden = !(state === 'online' && video.muted && !video.paused);
}

ui.unmute.addEventListener('click', () => {
  video.muted = false;
  if (video.volume === 0) video.volume = 1;
  play();
  updateUnmute();
});

// ---------------------------------------------------------------- P2P

// One validator for the page, so its copy of each segments.json outlives
// players.
const validator = p2p.createSegmentValidator({
  fetchList: (url) => getJSON(url),
  onReject: () => {
    stats.p2pRejectedSegments++;
  },
});

// While a player exists: refresh the "from peers" figure every second and
// post the totals every 5 s. When it goes, and when the page goes, post them
// once more if they changed (a playlist that 404s at start-up rebuilds the
// player every few seconds).
function startStats() {
  stopStats();
  statsTicks = 0;
  statsTimer = setInterval(() => {
    renderP2P();
    if (++statsTicks % 5 === 0) report();
  }, 1000);
}

function stopStats() {
  if (!statsTimer) return;
  clearInterval(statsTimer);
  statsTimer = 0;
  report({ ifChanged: true });
}

function report({ ifChanged = false, beacon = false } = {}) {
  const totals = stats.report(viewer);
  const json = JSON.stringify(totals);
  if (ifChanged && json === lastReport) return;
  lastReport = json;
  p2p.sendReport(totals, { beacon });
}

addEventListener('pagehide', () => report({ ifChanged: true, beacon: true }));

// The switch under the player. It reads on only while this viewer uploads:
// off for 'off', and for 'consume' (the default on cellular connections).
ui.p2pShare.addEventListener('change', () => {
  p2p.saveShareChoice(prefs, ui.p2pShare.checked);
  if (hls && playerMode !== wantedMode()) createPlayer();
  renderP2P();
});

function renderP2P() {
  const available = Boolean(p2p.p2pSettings(config)) && Hls.isSupported();
  ui.p2p.hidden = !available;
  if (!available) return;
  ui.p2pShare.checked = wantedMode() === 'share';
  const share = stats.p2pShare();
  ui.p2pRatio.hidden = share === null;
  if (share !== null) setText(ui.p2pRatio, `${Math.round(share * 100)}% from peers`);
}

// ---------------------------------------------------------------- state

function setState(next) {
  if (next === state) return;
  state = next;
  if (state === 'online') {
    retryDelayMs = RETRY_MIN_MS;
    showThumbnail();
    createPlayer();
  } else {
    destroyPlayer();
    video.removeAttribute('poster');
    if (hasBeenLive()) showThumbnail();
  }
  render();
}

// showThumbnail loads the current /thumbnail.jpg (the query string defeats
// caching) and, only once it has loaded, shows it: as the video poster while
// live and waiting for the first frame, or behind the offline card. It 404s
// until the server has made one; then nothing changes and the CSS gradient
// stays.
function showThumbnail() {
  const url = `${THUMBNAIL_URL}?t=${Date.now()}`;
  const probe = new Image();
  probe.addEventListener('load', () => {
    if (state === 'online') {
      video.poster = url;
    } else {
      ui.offlinePoster.src = url;
      ui.offlinePoster.hidden = false;
    }
  });
  probe.src = url;
}

function hasBeenLive() {
  return Boolean(status && (status.lastConnectTime || status.lastDisconnectTime));
}

let sawStatus = false;

function applyStatus() {
  const first = !sawStatus;
  sawStatus = true;
  if (!status.online) endedSession = undefined; // a new session may start
  const previous = state;
  setState(status.online && status.lastConnectTime !== endedSession ? 'online' : 'offline');
  if (state !== previous) return;
  // Only now do we know whether a thumbnail can exist (state starts offline).
  if (state === 'offline' && first && hasBeenLive()) showThumbnail();
  // Still waiting for the first frame: show the newest thumbnail meanwhile.
  if (state === 'online' && video.readyState < HTMLMediaElement.HAVE_CURRENT_DATA) showThumbnail();
}

// ---------------------------------------------------------------- render

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
const UNITS = [
  ['year', 365 * 86400],
  ['month', 30 * 86400],
  ['week', 7 * 86400],
  ['day', 86400],
  ['hour', 3600],
  ['minute', 60],
];

function timeAgo(seconds) {
  for (const [unit, size] of UNITS) {
    if (seconds >= size) return relative.format(-Math.floor(seconds / size), unit);
  }
  return 'just now';
}

function duration(seconds) {
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  return hours ? `${hours}h ${minutes % 60}m` : `${minutes}m`;
}

// secondsSince returns how long ago an RFC 3339 time was, on the server's
// clock, or null if it is missing or unparsable.
function secondsSince(rfc3339) {
  const t = rfc3339 ? Date.parse(rfc3339) : NaN;
  if (Number.isNaN(t)) return null;
  return Math.max(0, (Date.now() + clockSkewMs - t) / 1000);
}

function statusText() {
  if (state === 'online') {
    const live = secondsSince(status && status.lastConnectTime);
    if (live === null) return 'Live now';
    return live < 60 ? 'Just went live' : `Live for ${duration(live)}`;
  }
  if (!status) return 'Offline';
  if (status.online) return 'Stream ended'; // its playlist ended before the status caught up
  const last = secondsSince(status.lastDisconnectTime);
  return last === null ? 'Not live yet' : `Last live ${timeAgo(last)}`;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text; // avoid re-announcing aria-live
}

function render() {
  const name = (config && config.name) || FALLBACK_NAME;
  const streamTitle = (status && status.streamTitle) || (config && config.streamTitle) || '';
  const online = state === 'online';

  document.title = streamTitle && streamTitle !== name ? `${streamTitle} – ${name}` : name;
  setText(ui.serverName, name);
  setText(ui.title, streamTitle || name);

  setText(ui.badge, online ? 'Live' : 'Offline');
  ui.badge.classList.toggle('is-live', online);

  setText(ui.status, statusText());
  const viewers = online && status ? status.viewerCount : null;
  // The viewer asking counts, so zero means "not counted (yet)": say nothing.
  ui.viewers.hidden = !(Number.isInteger(viewers) && viewers > 0);
  if (!ui.viewers.hidden) setText(ui.viewers, `${viewers} ${viewers === 1 ? 'viewer' : 'viewers'}`);

  const summary = (config && config.summary) || '';
  ui.summary.hidden = !summary;
  setText(ui.summary, summary);

  const offlineMessage = (config && config.offlineMessage) || '';
  ui.offlineMessage.hidden = !offlineMessage || unsupported;
  setText(ui.offlineMessage, offlineMessage);
  setText(ui.offlineHeading, online && unsupported ? "This browser can't play the stream" : 'This stream is offline');
  ui.offline.hidden = online && !unsupported;

  const version = (config && config.version) || (status && status.versionNumber) || '';
  setText(ui.version, version ? ` ${version}` : '');

  renderP2P();
  updateUnmute();
}

// ---------------------------------------------------------------- polling

async function getJSON(url) {
  const res = await fetch(url, {
    cache: 'no-store',
    headers: { Accept: 'application/json' },
    signal: AbortSignal.timeout ? AbortSignal.timeout(FETCH_TIMEOUT_MS) : undefined,
  });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

let configPending = false;

async function loadConfig() {
  if (configPending) return;
  configPending = true;
  try {
    config = await getJSON('/api/config');
  } catch (err) {
    console.debug('config unavailable:', err.message);
  }
  configPending = false;
  // A player built before the config arrived may have the wrong P2P mode.
  if (hls && playerMode !== wantedMode()) createPlayer();
  render();
}

let pollTimer = 0;
let polling = false;

async function poll() {
  if (polling) return;
  polling = true;
  clearTimeout(pollTimer);
  try {
    const next = await getJSON('/api/status');
    const serverTime = Date.parse(next.serverTime);
    if (!Number.isNaN(serverTime)) clockSkewMs = serverTime - Date.now();
    status = next;
    applyStatus();
    if (!config) loadConfig(); // the server answers now; it may not have at load
  } catch (err) {
    // Keep the current state: a blip in the status API should not stop a
    // stream that is playing fine.
    console.debug('status unavailable:', err.message);
  }
  render();
  polling = false;
  pollTimer = setTimeout(poll, POLL_MS);
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') poll();
});

// The chat panel (src/chat.js). A stream starting or stopping there is
// news the status poll would only see within POLL_MS.
const chat = startChat(document.getElementById('chat'), { onStream: () => poll() });

// Read-only hook for automated browser tests.
Object.defineProperty(window, 'starling', {
  value: Object.freeze({
    get state() {
      return state;
    },
    get hls() {
      return hls;
    },
    get p2p() {
      return stats.snapshot();
    },
    get chat() {
      return chat.snapshot();
    },
  }),
});

render();
// The first player waits for the config, which says whether it shares.
loadConfig().then(poll);
