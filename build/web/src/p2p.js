// Peer-to-peer segment sharing for the viewer page: the server's settings,
// segment integrity, the viewer's opt-out and playback telemetry.
//
// Viewers exchange HLS segments over WebRTC with p2p-media-loader 2.3.1,
// introduced to each other by the WebTorrent tracker in the Starling server.
// The server's HTTP copy is always the fallback. Nothing here imports the
// player or the P2P library, so node can unit-test it (test/p2p.test.js).
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

// Used when the server's p2p object leaves a tuning field out. Latency must
// exceed highDemandTimeWindow plus a segment for any P2P to happen: segments
// closer to the playhead always come over HTTP (shared/notes/p2p.md §2.4).
export const P2P_DEFAULTS = Object.freeze({
  trackerPath: '/tracker',
  highDemandTimeWindow: 1, // seconds
  liveSyncDurationCount: 3, // segments behind the live edge
  simultaneousHttpDownloads: 2,
  httpDownloadInitialTimeoutMs: 0,
});

// p2pSettings returns the P2P settings from /api/config, or null when the page
// must play without P2P: no p2p object, enabled not true, or no swarm id (the
// tracker only admits the info hashes derived from the server's swarm id).
export function p2pSettings(config) {
  const p = config && config.p2p;
  if (!p || p.enabled !== true || typeof p.swarmId !== 'string' || p.swarmId === '') return null;
  const number = (key, min) => (Number.isFinite(p[key]) && p[key] >= min ? p[key] : P2P_DEFAULTS[key]);
  return {
    swarmId: p.swarmId,
    trackerPath:
      typeof p.trackerPath === 'string' && p.trackerPath.startsWith('/') ? p.trackerPath : P2P_DEFAULTS.trackerPath,
    iceServers: Array.isArray(p.iceServers) ? p.iceServers : [],
    highDemandTimeWindow: number('highDemandTimeWindow', 0),
    liveSyncDurationCount: number('liveSyncDurationCount', 1),
    simultaneousHttpDownloads: number('simultaneousHttpDownloads', 1),
    httpDownloadInitialTimeoutMs: number('httpDownloadInitialTimeoutMs', 0),
  };
}

// trackerUrl is the tracker's WebSocket URL on the page's own host, so that
// CSP connect-src 'self' covers it.
export function trackerUrl(location, trackerPath) {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + trackerPath;
}

// coreConfig builds p2p-media-loader's core config (types.ts CoreConfig;
// top-level keys apply to the main and the secondary stream alike). The swarm
// id is the server's, unchanged: the tracker whitelists the info hashes
// derived from it.
export function coreConfig(settings, { tracker, mode, peerId, validateP2PSegment, customSegmentStorageFactory }) {
  const config = {
    announceTrackers: [tracker],
    // A whole peer id as the "prefix": the library adds no characters to
    // it, and the page knows its own id (FirstHolder).
    ...(peerId ? { trackerClientVersionPrefix: peerId } : {}),
    rtcConfig: { iceServers: settings.iceServers },
    swarmId: settings.swarmId,
    highDemandTimeWindow: settings.highDemandTimeWindow,
    simultaneousHttpDownloads: settings.simultaneousHttpDownloads,
    httpDownloadInitialTimeoutMs: settings.httpDownloadInitialTimeoutMs,
    validateP2PSegment,
    ...dynamicShareConfig(mode),
  };
  if (customSegmentStorageFactory) config.customSegmentStorageFactory = customSegmentStorageFactory;
  return config;
}

// keepSegmentsForPeers makes the P2P engine hand hls.js its own copy of each
// segment. hls.js transfers the bytes it gets to its transmuxer worker, which
// detaches the ArrayBuffer; p2p-media-loader 2.3.1 gives hls.js the very
// buffer that it keeps in its segment storage (request.data, or the stored
// buffer itself) and uploads to peers. Without the copy every segment this
// page has played is uploaded as 0 bytes, and peers reject us. The engine
// sets hls.config.fLoader in the constructor and hls.js reads it at each
// fragment load, so wrapping it here (from onHlsJsCreated) covers them all.
export function keepSegmentsForPeers(hls) {
  wrapLoader(hls, 'fLoader', (callbacks) => {
    // onProgress and onSuccess may get the same buffer: copy it once.
    const copies = new WeakMap();
    const own = (data) => {
      if (!(data instanceof ArrayBuffer)) return data;
      let copy = copies.get(data);
      if (!copy) copies.set(data, (copy = data.slice(0)));
      return copy;
    };
    const { onProgress, onSuccess } = callbacks;
    return {
      ...callbacks,
      onProgress: onProgress && ((stats, ctx, data, details) => onProgress(stats, ctx, own(data), details)),
      onSuccess: (response, stats, ctx, details) => onSuccess({ ...response, data: own(response.data) }, stats, ctx, details),
    };
  });
}

// wrapLoader replaces hls.js's loader of kind ('fLoader', 'pLoader': the
// P2P engine's, which it sets in its constructor and hls.js reads at each
// load) with one that hands each load the callbacks wrap makes of the
// caller's.
function wrapLoader(hls, kind, wrap) {
  const Loader = hls.config[kind];
  hls.config[kind] = class extends Loader {
    load(context, config, callbacks) {
      super.load(context, config, wrap(callbacks));
    }
  };
}

// ---------------------------------------------------------------- first holder

// A segment enters the swarm when one viewer fetches it over HTTP; the
// others can then take it from that viewer. p2p-media-loader leaves who
// goes first to chance: a timer, every 1 to 1 + peers seconds, fetches a
// segment that nobody has with a probability of segments/peers, and a
// segment that reaches the high-demand window unfetched is fetched by
// everyone. A few seconds behind live, chance is too slow and most
// segments come over HTTP to every viewer.
//
// So the viewers connected to each other elect one first holder: the one
// with the lowest peer id among itself and its peers. It takes every
// segment over HTTP the moment its playlist lists it (its high-demand
// window spans the whole playlist); the others keep the server's window
// and fetch from it, or from each other, and over HTTP only what is
// still missing when it nears their playhead. If the first holder leaves,
// the next lowest takes over as soon as its peer closes.

// FIRST_HOLDER_WINDOW is the first holder's high-demand window, seconds:
// longer than any playlist.
export const FIRST_HOLDER_WINDOW = 3600;

// p2p-media-loader 2.3's client prefix, kept so that trackers see what
// client a peer is.
const PEER_ID_PREFIX = '-PM0203-';
const PEER_ID_SYMBOLS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

// newPeerId returns a tracker peer id, 20 characters: the library's
// prefix, a class, then random. Ids compare by class first, so the first
// holder is a peer of the first class present: '0' for 'seed', a peer that
// means to take every segment from the server itself (the Go peer of
// video/tracker/peer, the tampering page of the integrity tests); '1' for
// 'share', a viewer that uploads; 'z' for 'consume', one that does not,
// first holder only among its own kind.
export function newPeerId(kind, random = Math.random) {
  let id = PEER_ID_PREFIX + ({ seed: '0', consume: 'z' }[kind] || '1');
  while (id.length < 20) id += PEER_ID_SYMBOLS[Math.floor(random() * PEER_ID_SYMBOLS.length)];
  return id;
}

// onCurrent returns on(name, fn), which listens to engine's event name
// (types.ts CoreEventMap) for as long as isCurrent() says the engine is the
// page's player's: a late event of an old one is ignored.
function onCurrent(engine, isCurrent) {
  return (name, fn) =>
    engine.addEventListener(name, (...args) => {
      if (isCurrent()) fn(...args);
    });
}

// FirstHolder follows one engine's peers of the main stream and tells
// onChange whether this page is the first holder, at the start and
// whenever that changes.
export class FirstHolder {
  constructor(selfId, onChange) {
    this.selfId = selfId;
    this.onChange = onChange;
    this.peers = new Set();
    this.elected = null;
  }

  watch(engine, isCurrent) {
    const on = onCurrent(engine, isCurrent);
    const main = (fn) => (peer) => {
      if (peer.streamType !== 'main') return;
      fn(peer.peerId);
      this.update();
    };
    on('onPeerConnect', main((id) => this.peers.add(id)));
    on('onPeerClose', main((id) => this.peers.delete(id)));
    this.update();
  }

  update() {
    let elected = true;
    for (const id of this.peers) if (id < this.selfId) elected = false;
    if (elected === this.elected) return;
    this.elected = elected;
    this.onChange(elected);
  }
}

// withoutDeliveryDirectives returns url without the blocking-reload query
// parameters hls.js adds (_HLS_msn, _HLS_part, _HLS_skip).
export function withoutDeliveryDirectives(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  for (const name of ['_HLS_msn', '_HLS_part', '_HLS_skip']) u.searchParams.delete(name);
  return u.href;
}

// keepPlaylistUrls makes each media playlist reach hls.js under its own
// URL. A blocking reload's response URL carries _HLS_msn, hls.js takes it
// as the playlist's URL, and p2p-media-loader 2.3.1 finds its stream by
// that URL: it would never hear of a new segment, and share none. Segment
// URIs resolve the same either way. Call it from onHlsJsCreated, as
// keepSegmentsForPeers.
export function keepPlaylistUrls(hls) {
  wrapLoader(hls, 'pLoader', (callbacks) => ({
    ...callbacks,
    onSuccess: (response, stats, ctx, details) =>
      callbacks.onSuccess({ ...response, url: response.url && withoutDeliveryDirectives(response.url) }, stats, ctx, details),
  }));
}

// ---------------------------------------------------------------- opt-out

// storageOr returns the Web Storage that get() gives, or a stand-in kept in
// memory when the browser refuses storage (reading window.localStorage can
// throw when the viewer blocks site data).
export function storageOr(get) {
  try {
    const storage = get();
    storage.getItem(SHARE_KEY);
    return storage;
  } catch {
    const items = new Map();
    return {
      getItem: (key) => (items.has(key) ? items.get(key) : null),
      setItem: (key, value) => items.set(key, String(value)),
    };
  }
}

export const SHARE_KEY = 'starling.p2p.share';

// shareMode says how this viewer takes part:
//   'share'   download from and upload to peers (the default)
//   'consume' download from peers, upload nothing: the default on cellular or
//             data-saver connections, where the switch reads off
//   'off'     no P2P at all: the viewer turned the switch off
export function shareMode(storage, connection) {
  let stored = null;
  try {
    stored = storage.getItem(SHARE_KEY);
  } catch {
    // storage blocked: use the default
  }
  if (stored === 'on') return 'share';
  if (stored === 'off') return 'off';
  return connection && (connection.saveData || connection.type === 'cellular') ? 'consume' : 'share';
}

export function saveShareChoice(storage, on) {
  try {
    storage.setItem(SHARE_KEY, on ? 'on' : 'off');
  } catch {
    // storage blocked: the choice lasts until the page is reloaded
  }
}

// ---------------------------------------------------------------- integrity

// segmentListLocation maps a segment URL to its file name and the URL of the
// hash list of its rendition: /hls/0/seg-1.ts -> /hls/0/segments.json,
// "seg-1.ts". The server publishes the lists itself, so a segment served
// from elsewhere (a bucket or CDN: another origin) has its list at
// hlsBase + the segment's directory name + /segments.json. null if the
// URL names no file.
export function segmentListLocation(segmentUrl, hlsBase = globalThis.location && new URL('/hls/', globalThis.location.href).href) {
  let url;
  try {
    url = new URL(segmentUrl);
  } catch {
    return null;
  }
  const parts = url.pathname.split('/');
  let name, dir;
  try {
    name = decodeURIComponent(parts[parts.length - 1]);
    dir = parts.length > 2 ? decodeURIComponent(parts[parts.length - 2]) : '';
  } catch {
    return null;
  }
  if (name === '' || name.includes('/')) return null;
  if (!hlsBase || new URL(hlsBase).origin === url.origin) {
    return { listUrl: new URL('segments.json', url).href, name };
  }
  if (!/^[0-9]{1,2}$/.test(dir)) return null;
  return { listUrl: new URL(dir + '/segments.json', hlsBase).href, name };
}

// sha256Hex hashes with WebCrypto where the page has it (secure contexts:
// https, localhost) and with @noble/hashes elsewhere (plain http on a LAN
// address has no crypto.subtle).
export async function sha256Hex(data, subtle = globalThis.crypto && globalThis.crypto.subtle) {
  const digest = subtle ? new Uint8Array(await subtle.digest('SHA-256', data)) : sha256(new Uint8Array(data));
  return bytesToHex(digest);
}

const expectedHash = (list, name) =>
  list && Object.prototype.hasOwnProperty.call(list, name) && typeof list[name] === 'string'
    ? list[name].toLowerCase()
    : undefined;

// createSegmentValidator returns p2p-media-loader's validateP2PSegment: true
// only if the SHA-256 of data equals the hash that the server publishes for the
// segment in segments.json beside it. false makes the library drop the peer
// and fetch the segment over HTTP.
//
// A segment can reach us from a peer before the list we hold, or even the
// server's own, names it: a missing name refetches the list, up to `attempts`
// times `retryDelayMs` apart (PeerTube's rule: 10 x 500 ms). A cached hash
// that differs is checked once against a fresh list before rejecting.
//
// fetchList(url) resolves to the parsed JSON; onReject is called once per
// rejected segment.
export function createSegmentValidator({
  fetchList,
  digest = sha256Hex,
  sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  attempts = 10,
  retryDelayMs = 500,
  onReject = () => {},
}) {
  const lists = new Map(); // list URL -> last good list
  const pending = new Map(); // list URL -> fetch in flight, shared by concurrent validations

  const refresh = (listUrl) => {
    let p = pending.get(listUrl);
    if (!p) {
      p = Promise.resolve()
        .then(() => fetchList(listUrl))
        .then(
          (list) => {
            if (list && typeof list === 'object') lists.set(listUrl, list);
          },
          (err) => console.debug('p2p: segment hashes unavailable:', err && err.message),
        )
        .then(() => {
          pending.delete(listUrl);
          return lists.get(listUrl);
        });
      pending.set(listUrl, p);
    }
    return p;
  };

  const reject = (url, why) => {
    console.warn(`p2p: rejected segment from a peer: ${url}: ${why}`);
    onReject();
    return false;
  };

  return async function validateP2PSegment(url, byteRange, data) {
    const where = segmentListLocation(url);
    if (!where) return reject(url, 'no file name');
    // segments.json has one hash per file; our playlists have no byte ranges.
    if (byteRange) return reject(url, 'byte ranges are not supported');
    const actual = await digest(data);
    let expected = expectedHash(lists.get(where.listUrl), where.name);
    if (expected === actual) return true;
    expected = undefined;
    for (let i = 0; i < attempts && expected === undefined; i++) {
      if (i > 0) await sleep(retryDelayMs);
      expected = expectedHash(await refresh(where.listUrl), where.name);
    }
    if (expected === undefined) return reject(url, 'not in ' + where.listUrl);
    return expected === actual || reject(url, 'SHA-256 mismatch');
  };
}

// ---------------------------------------------------------------- telemetry

export const METRICS_URL = '/api/metrics/playback';
const VIEWER_ID_KEY = 'starling.viewerId';

// randomId returns 22 URL-safe characters (128 random bits).
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

// viewerId is this tab's id for the telemetry, kept for the session.
export function viewerId(storage) {
  try {
    let id = storage.getItem(VIEWER_ID_KEY);
    if (!/^[A-Za-z0-9_-]{22}$/.test(id || '')) {
      id = randomId();
      storage.setItem(VIEWER_ID_KEY, id);
    }
    return id;
  } catch {
    return randomId();
  }
}

// PlaybackStats holds this page's totals since it loaded; players come and go
// (offline, opt-out switch), the totals stay. The server computes deltas.
export class PlaybackStats {
  constructor() {
    this.enabled = false; // the current player shares over P2P
    this.httpBytes = 0;
    this.p2pBytes = 0;
    this.p2pUploadedBytes = 0;
    this.p2pRejectedSegments = 0;
    this.peers = new Set(); // connected peers of the current player
  }

  // watch counts the traffic of a P2P engine (HlsJsP2PEngine; core events,
  // types.ts CoreEventMap). isCurrent() tells whether the engine still
  // belongs to the page's player, so a late event of an old one is ignored.
  watch(engine, isCurrent) {
    const on = onCurrent(engine, isCurrent);
    on('onChunkDownloaded', (bytes, source) => {
      if (source === 'p2p') this.p2pBytes += bytes;
      else this.httpBytes += bytes;
    });
    on('onChunkUploaded', (bytes) => {
      this.p2pUploadedBytes += bytes;
    });
    on('onPeerConnect', (peer) => this.peers.add(`${peer.streamType}/${peer.peerId}`));
    on('onPeerClose', (peer) => this.peers.delete(`${peer.streamType}/${peer.peerId}`));
  }

  // p2pShare is the fraction of this page's downloaded bytes that came from
  // peers, or null before any byte.
  p2pShare() {
    const total = this.httpBytes + this.p2pBytes;
    return total > 0 ? this.p2pBytes / total : null;
  }

  snapshot() {
    return {
      enabled: this.enabled,
      httpBytes: this.httpBytes,
      p2pBytes: this.p2pBytes,
      p2pUploadedBytes: this.p2pUploadedBytes,
      p2pRejectedSegments: this.p2pRejectedSegments,
      peers: this.peers.size,
    };
  }

  report(viewer) {
    return {
      viewerId: viewer,
      httpBytes: this.httpBytes,
      p2pBytes: this.p2pBytes,
      p2pUploadedBytes: this.p2pUploadedBytes,
      p2pRejectedSegments: this.p2pRejectedSegments,
      p2pEnabled: this.enabled,
    };
  }
}

// sendReport posts the totals; errors are ignored (the next report carries
// the same totals). On pagehide it uses sendBeacon, which outlives the page.
export function sendReport(report, { beacon = false } = {}) {
  const body = JSON.stringify(report);
  if (beacon && navigator.sendBeacon) {
    try {
      if (navigator.sendBeacon(METRICS_URL, new Blob([body], { type: 'application/json' }))) return;
    } catch {
      // fall through to fetch
    }
  }
  fetch(METRICS_URL, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body,
    keepalive: beacon,
  }).catch(() => {});
}

// dynamicShareConfig is what p2p-media-loader's applyDynamicConfig takes to
// move a running engine to a share mode: 'off' stops its P2P (the core
// drops its peers and tracker connection, and hls.js's own loader fetches
// every segment), 'consume' downloads from peers without uploading.
export function dynamicShareConfig(mode) {
  return { isP2PDisabled: mode === 'off', isP2PUploadDisabled: mode !== 'share' };
}
