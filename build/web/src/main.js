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
import { PAGE_TAGS, sanitizeHTML, startChat } from './chat.js';
import { replaceEmoji } from './emoji.js';
import * as p2p from './p2p.js';
import * as page from './page.js';
import { TamperingSegmentStorage } from './tamper.js';

// Replaced at build time (build.mjs) by the URL of the content-hashed copy of
// hls.js's worker. The ES module build of hls.js has no inline worker.
/* global __HLS_WORKER_URL__, __EMOJI_BASE__ */
const HLS_WORKER_URL = __HLS_WORKER_URL__;
// Where build.mjs put the bundled emoji images.
const EMOJI_BASE = __EMOJI_BASE__;

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
  box: $('player-box'),
  controls: $('controls'),
  play: $('ctl-play'),
  mute: $('ctl-mute'),
  volume: $('ctl-volume'),
  live: $('ctl-live'),
  liveText: $('ctl-live-text'),
  behind: $('ctl-behind'),
  quality: $('ctl-quality'),
  fullscreen: $('ctl-fullscreen'),
  nsfw: $('nsfw'),
  nsfwContinue: $('nsfw-continue'),
  logo: $('brand-logo'),
  tags: $('tags'),
  social: $('social'),
  actions: $('actions'),
  about: $('about'),
  aboutContent: $('about-content'),
  dialog: $('action-dialog'),
  dialogTitle: $('action-title'),
  dialogBody: $('action-body'),
  dialogClose: $('action-close'),
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
// One tracker peer id for the page's life: p2p-media-loader keeps the first
// id it used for a stream anyway. A tampering page goes first, or no one
// would take its segments.
const peerId = p2p.newPeerId(tamper ? 'seed' : p2p.shareMode(prefs, navigator.connection));
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
  // Our playlists have no parts; this makes hls.js ask for the next
  // segment with a blocking reload (_HLS_msn) the moment it has a playlist,
  // so it hears of each segment as soon as the server lists it.
  lowLatencyMode: true,
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
    if (!settings) {
      hls = new Hls(HLS_CONFIG);
    } else {
      // Whenever the server offers P2P the player has the engine, even for
      // a viewer who turned sharing off (its core then leaves every segment
      // to hls.js's own loader and joins no swarm): the switch changes the
      // engine's settings in place, never the player (applyShareMode).
      hls = new HlsWithP2P({
        ...HLS_CONFIG,
        // Explicit, or the engine pushes latency back by itself once the
        // playlist has more than 4 segments (shared/notes/p2p.md §2.1).
        liveSyncDurationCount: settings.liveSyncDurationCount,
        p2p: {
          core: p2p.coreConfig(settings, {
            tracker: p2p.trackerUrl(location, settings.trackerPath),
            mode: playerMode,
            peerId,
            validateP2PSegment: validator,
            customSegmentStorageFactory: tamper ? () => new TamperingSegmentStorage() : undefined,
          }),
          onHlsJsCreated(h) {
            p2p.keepSegmentsForPeers(h);
            p2p.keepPlaylistUrls(h);
            stats.watch(h.p2pEngine, () => id === playerId);
            const highDemandTimeWindow = (first) => (first ? p2p.FIRST_HOLDER_WINDOW : settings.highDemandTimeWindow);
            const holder = new p2p.FirstHolder(peerId, (first) =>
              h.p2pEngine.applyDynamicConfig({ core: { highDemandTimeWindow: highDemandTimeWindow(first) } }),
            );
            holder.watch(h.p2pEngine, () => id === playerId);
          },
        },
      });
    }
    // With sharing off, hls.js's own loader fetches every segment; the
    // engine counts only what goes through it.
    hls.on(Hls.Events.FRAG_LOADED, (_event, data) => {
      if (id === playerId && playerMode === 'off') stats.httpBytes += data.frag.stats.total || data.payload.byteLength || 0;
    });
    stats.enabled = playerMode !== 'off';
    hls.on(Hls.Events.ERROR, onHlsError);
    hls.on(Hls.Events.MANIFEST_PARSED, renderQuality);
    hls.on(Hls.Events.LEVELS_UPDATED, renderQuality);
    hls.on(Hls.Events.LEVEL_SWITCHED, renderQuality);
    // The last segment of a playlist with #EXT-X-ENDLIST is buffered: the
    // broadcaster stopped.
    hls.on(Hls.Events.BUFFER_EOS, onStreamEnded);
    hls.loadSource(STREAM_URL);
    hls.attachMedia(video);
    startStats();
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    nativeActive = true;
    // Safari's own player: its native controls know its live stream.
    video.controls = true;
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
  video.controls = false;
  ui.spinner.hidden = true;
  renderQuality();
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
    if (state === 'online' && mayPlay()) createPlayer();
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

// steerLatency keeps the player at hls.js's target latency by easing the
// playback rate (page.steerRate); a player that fell too far behind jumps
// back to it.
function steerLatency() {
  if (!hls || video.paused) return;
  const target = hls.targetLatency;
  const off = hls.latency - target;
  if (!target || !Number.isFinite(off)) return;
  if (off > page.JUMP_TO_LIVE_S && Number.isFinite(hls.liveSyncPosition)) {
    video.currentTime = hls.liveSyncPosition;
    return;
  }
  const rate = page.steerRate({ off, rate: video.playbackRate, sharing: playerMode !== 'off' });
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
  applyShareMode();
  renderP2P();
});

// applyShareMode brings the current player to the P2P mode wanted now.
// Between share, consume and off the player stays: p2p-media-loader takes
// isP2PDisabled and isP2PUploadDisabled as dynamic settings, so the video
// keeps playing from its buffer while the engine joins or leaves the
// swarm. Only the server turning P2P on or off (the engine must be there
// or not) rebuilds the player.
function applyShareMode() {
  if (!hls) return;
  const mode = wantedMode();
  const engine = hls.p2pEngine;
  if (Boolean(engine) !== Boolean(p2p.p2pSettings(config))) {
    createPlayer();
    return;
  }
  if (!engine || mode === playerMode) return;
  engine.applyDynamicConfig({ core: p2p.dynamicShareConfig(mode) });
  playerMode = mode;
  stats.enabled = mode !== 'off';
  if (mode === 'off') stats.peers.clear();
}

function renderP2P() {
  // Hidden while offline: there is nothing to share.
  const available = Boolean(p2p.p2pSettings(config)) && Hls.isSupported() && state === 'online';
  ui.p2p.hidden = !available;
  if (!available) return;
  ui.p2pShare.checked = wantedMode() === 'share';
  const share = stats.p2pShare();
  ui.p2pRatio.hidden = share === null;
  if (share !== null) setText(ui.p2pRatio, `${Math.round(share * 100)}% from peers`);
}

// ---------------------------------------------------------------- controls

// The control bar: play/pause, mute and volume, the live badge that is
// also "go to live", the quality menu, full screen. Buttons, a range and a
// select: each reachable with Tab and worked with Enter or Space; on the
// player itself k/space, m, f and l do the same.
function renderControls() {
  ui.controls.hidden = state !== 'online' || !hls;
  if (ui.controls.hidden) return;
  const paused = video.paused;
  ui.play.classList.toggle('is-paused', paused);
  ui.play.setAttribute('aria-label', paused ? 'Play' : 'Pause');
  ui.controls.classList.toggle('is-playing', !paused);
  const muted = video.muted || video.volume === 0;
  ui.mute.classList.toggle('is-muted', muted);
  ui.mute.setAttribute('aria-label', muted ? 'Unmute' : 'Mute');
  const volume = muted ? 0 : video.volume;
  if (Number(ui.volume.value) !== volume) ui.volume.value = String(volume);
  const live = page.atLiveEdge({ latency: hls.latency, targetLatency: hls.targetLatency, paused });
  ui.live.classList.toggle('is-live', live);
  setText(ui.liveText, live ? 'Live' : 'Go to live');
  setText(ui.behind, paused ? '' : page.behindLive(hls.latency));
  ui.live.setAttribute('aria-label', live ? 'Live: playing at the live edge' : 'Behind live: go to live');
}

function togglePlay() {
  if (video.paused) play();
  else video.pause();
}

function toggleMute() {
  video.muted = !video.muted;
  if (!video.muted && video.volume === 0) video.volume = 1;
}

// goLive jumps to where hls.js would start a live stream now.
function goLive() {
  if (hls && Number.isFinite(hls.liveSyncPosition)) video.currentTime = hls.liveSyncPosition;
  play();
}

function toggleFullscreen() {
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  } else if (ui.box.requestFullscreen) {
    ui.box.requestFullscreen().catch(() => {});
  } else if (video.webkitEnterFullscreen) {
    video.webkitEnterFullscreen(); // iPhone: only the video goes full screen
  }
}

ui.play.addEventListener('click', togglePlay);
ui.mute.addEventListener('click', toggleMute);
ui.volume.addEventListener('input', () => {
  video.volume = Number(ui.volume.value);
  video.muted = video.volume === 0;
});
ui.live.addEventListener('click', goLive);
ui.fullscreen.addEventListener('click', toggleFullscreen);
video.addEventListener('click', togglePlay);
video.addEventListener('dblclick', toggleFullscreen);
ui.box.addEventListener('keydown', (e) => {
  // Keys typed into the menu or the volume slider are theirs.
  if (e.target.closest('select, input')) return;
  const action = page.playerKey(e);
  if (!action || (action === 'play' && e.key === ' ' && e.target.closest('button'))) return;
  e.preventDefault();
  ({ play: togglePlay, mute: toggleMute, fullscreen: toggleFullscreen, live: goLive })[action]();
  renderControls();
});
for (const type of ['play', 'pause', 'volumechange', 'timeupdate', 'playing']) {
  video.addEventListener(type, renderControls);
}

// renderQuality fills the quality menu from hls.js's levels: shown only
// when there is a choice. Auto says which rendition hls.js picked.
function renderQuality() {
  const levels = hls ? hls.levels : [];
  ui.quality.hidden = !levels || levels.length < 2;
  if (ui.quality.hidden) {
    ui.quality.replaceChildren();
    return;
  }
  const options = page.qualityOptions(levels);
  const auto = hls.autoLevelEnabled;
  const current = levels[hls.currentLevel];
  const want = options.map((o) => o.value + ':' + o.label).join('|');
  if (ui.quality.dataset.options !== want) {
    ui.quality.dataset.options = want;
    ui.quality.replaceChildren(
      ...options.map((o) => {
        const opt = document.createElement('option');
        opt.value = String(o.value);
        opt.textContent = o.label;
        return opt;
      }),
    );
  }
  const autoOption = ui.quality.querySelector('option[value="-1"]');
  const picked = options.find((o) => o.value === hls.currentLevel);
  autoOption.textContent = auto && current && picked ? `Auto (${picked.label})` : 'Auto';
  ui.quality.value = String(auto ? -1 : hls.manualLevel !== undefined && hls.manualLevel >= 0 ? hls.manualLevel : hls.currentLevel);
}

ui.quality.addEventListener('change', () => {
  if (!hls) return;
  // currentLevel switches now (flushing what is buffered of the old one);
  // -1 gives the choice back to hls.js.
  hls.currentLevel = Number(ui.quality.value);
});

// ---------------------------------------------------------------- NSFW

// A stream the admin marked NSFW plays only once the viewer has clicked
// through the notice; the choice lasts for the tab's session.
const NSFW_KEY = 'starling.nsfw.accepted';
const session = p2p.storageOr(() => sessionStorage);
let nsfwAccepted = session.getItem(NSFW_KEY) === '1';

function mayPlay() {
  return !(config && config.nsfw) || nsfwAccepted;
}

ui.nsfwContinue.addEventListener('click', () => {
  nsfwAccepted = true;
  try {
    session.setItem(NSFW_KEY, '1');
  } catch {
    // storage blocked: asked again on the next load
  }
  if (state === 'online' && !hls && !nativeActive) createPlayer();
  render();
  ui.box.focus();
});

// ---------------------------------------------------------------- the admin's page

const parser = new DOMParser();

// pageHTML is the server's rendered Markdown through the page's allowlist
// (it was sanitised on the server; this is the second fence), with the
// bundled emoji as images.
function pageHTML(html) {
  const frag = sanitizeHTML(html, document, parser, PAGE_TAGS);
  replaceEmoji(frag, document, EMOJI_BASE);
  return frag;
}

let renderedConfig = ''; // the part of the config last drawn, to draw it only when it changes

// renderConfig draws what the admin set: logo, tags, summary, links,
// action buttons, about page.
function renderConfig() {
  if (!config) return;
  const part = JSON.stringify([config.logo, config.tags, config.summary, config.summaryHTML, config.socialHandles, config.externalActions, config.extraPageContent]);
  if (part === renderedConfig) return;
  renderedConfig = part;

  const logo = (typeof config.logo === 'string' && config.logo.startsWith('/') && !config.logo.startsWith('//') && config.logo) || '/logo';
  if (ui.logo.getAttribute('src') !== logo) ui.logo.src = logo;

  const tags = Array.isArray(config.tags) ? config.tags.filter((t) => typeof t === 'string' && t.trim()) : [];
  ui.tags.replaceChildren(
    ...tags.map((t) => {
      const li = document.createElement('li');
      li.textContent = '#' + t.trim().replace(/^#/, '');
      return li;
    }),
  );
  ui.tags.hidden = tags.length === 0;

  // summaryHTML is Starling's rendering of the Markdown; an older server
  // sends only the text.
  if (typeof config.summaryHTML === 'string') ui.summary.replaceChildren(pageHTML(config.summaryHTML));
  else ui.summary.textContent = config.summary || '';
  ui.summary.hidden = ui.summary.textContent.trim() === '' && !ui.summary.querySelector('img');

  const links = page.socialLinks(config.socialHandles);
  ui.social.replaceChildren(
    ...links.map((l) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = l.url;
      a.target = '_blank';
      // "me": the streamer's own profiles (rel=me verification on the fediverse).
      a.rel = 'noopener me';
      a.textContent = l.platform;
      li.appendChild(a);
      return li;
    }),
  );
  ui.social.hidden = links.length === 0;

  const actions = Array.isArray(config.externalActions) ? config.externalActions : [];
  ui.actions.replaceChildren();
  for (const action of actions) {
    const kind = page.actionKind(action, location.origin);
    if (!kind) continue;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'action-button';
    b.textContent = action.title.trim();
    if (typeof action.description === 'string' && action.description) b.title = action.description;
    const color = page.actionColor(action.color);
    if (color) b.style.backgroundColor = color; // CSSOM, not a style attribute: the CSP allows it
    b.addEventListener('click', () => openAction(action, kind));
    ui.actions.appendChild(b);
  }
  ui.actions.hidden = ui.actions.childElementCount === 0;

  ui.aboutContent.replaceChildren(pageHTML(config.extraPageContent || ''));
  ui.about.hidden = ui.aboutContent.textContent.trim() === '' && !ui.aboutContent.querySelector('img');
  // A page that starts with its own heading needs no "About" above it
  // (screen readers still get the section's name).
  const first = ui.aboutContent.firstElementChild;
  $('about-heading').classList.toggle('visually-hidden', Boolean(first && /^H[1-6]$/.test(first.tagName)));
}

// openAction opens an action button's page: a new tab, or a dialog over
// the page holding its HTML (sanitised) or its page (a frame of this
// origin, sandboxed: scripts, but not this origin's rights).
function openAction(action, kind) {
  const url = page.actionURL(action, location.origin);
  if (kind === 'tab') {
    window.open(url, '_blank', 'noopener');
    return;
  }
  setText(ui.dialogTitle, action.title.trim());
  ui.dialogBody.classList.toggle('is-frame', kind === 'frame');
  if (kind === 'frame') {
    const frame = document.createElement('iframe');
    frame.setAttribute('sandbox', 'allow-scripts allow-forms allow-popups');
    frame.setAttribute('referrerpolicy', 'no-referrer');
    frame.title = action.title.trim();
    frame.src = url;
    ui.dialogBody.replaceChildren(frame);
  } else {
    ui.dialogBody.replaceChildren(pageHTML(action.html));
  }
  ui.dialog.showModal();
}

ui.dialogClose.addEventListener('click', () => ui.dialog.close());
ui.dialog.addEventListener('close', () => ui.dialogBody.replaceChildren());
ui.dialog.addEventListener('click', (e) => {
  if (e.target === ui.dialog) ui.dialog.close(); // a click on the backdrop
});

// ---------------------------------------------------------------- state

function setState(next) {
  if (next === state) return;
  state = next;
  if (state === 'online') {
    retryDelayMs = RETRY_MIN_MS;
    showThumbnail();
    if (mayPlay()) createPlayer();
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

  ui.nsfw.hidden = mayPlay() || state !== 'online';

  const offlineMessage = (config && config.offlineMessage) || '';
  ui.offlineMessage.hidden = !offlineMessage || unsupported;
  setText(ui.offlineMessage, offlineMessage);
  setText(ui.offlineHeading, online && unsupported ? "This browser can't play the stream" : 'This stream is offline');
  ui.offline.hidden = online && !unsupported;

  const version = (config && config.version) || (status && status.versionNumber) || '';
  setText(ui.version, version ? ` ${version}` : '');

  renderP2P();
  updateUnmute();
  renderControls();
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
  // A player built before the config arrived may have the wrong P2P mode,
  // or be one the viewer has not agreed to see yet.
  if (!mayPlay()) destroyPlayer();
  else applyShareMode();
  renderConfig();
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
const chat = startChat(document.getElementById('chat'), { onStream: () => poll(), emojiBase: EMOJI_BASE });

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
    get playerMode() {
      return playerMode;
    },
    get chat() {
      return chat.snapshot();
    },
  }),
});

render();
// The first player waits for the config, which says whether it shares.
loadConfig().then(poll);
