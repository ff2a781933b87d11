// Unit tests for the viewer page's P2P helpers: node --test (npm test).
import assert from 'node:assert/strict';
import { createHash, webcrypto } from 'node:crypto';
import { describe, it } from 'node:test';
import * as p2p from '../src/p2p.js';
import { TamperingSegmentStorage, corrupted } from '../src/tamper.js';

const bytes = (text) => new TextEncoder().encode(text).buffer;
const hex = (buffer) => createHash('sha256').update(new Uint8Array(buffer)).digest('hex');
const memoryStorage = (items = {}) => ({
  items,
  getItem(key) {
    return Object.prototype.hasOwnProperty.call(this.items, key) ? this.items[key] : null;
  },
  setItem(key, value) {
    this.items[key] = String(value);
  },
});

describe('p2pSettings', () => {
  it('is null unless the server enables P2P with a swarm id', () => {
    for (const config of [
      null,
      {},
      { p2p: null },
      { p2p: { enabled: false, swarmId: 's' } },
      { p2p: { enabled: 'true', swarmId: 's' } },
      { p2p: { enabled: true } },
      { p2p: { enabled: true, swarmId: '' } },
      { p2p: { enabled: true, swarmId: 7 } },
    ]) {
      assert.equal(p2p.p2pSettings(config), null, JSON.stringify(config));
    }
  });

  it('fills absent or invalid fields with the defaults', () => {
    const s = p2p.p2pSettings({
      p2p: { enabled: true, swarmId: 'starling', highDemandTimeWindow: 'x', liveSyncDurationCount: 0, iceServers: {} },
    });
    assert.deepEqual(s, {
      swarmId: 'starling',
      trackerPath: '/tracker',
      iceServers: [],
      highDemandTimeWindow: 1,
      liveSyncDurationCount: 3,
      simultaneousHttpDownloads: 2,
      httpDownloadInitialTimeoutMs: 0,
    });
  });

  it("keeps the server's values", () => {
    const ice = [{ urls: ['turn:t.example:3478'], username: 'u', credential: 'c' }];
    const s = p2p.p2pSettings({
      p2p: {
        enabled: true,
        swarmId: 'starling',
        trackerPath: '/t',
        iceServers: ice,
        highDemandTimeWindow: 8,
        liveSyncDurationCount: 7,
        simultaneousHttpDownloads: 1,
        httpDownloadInitialTimeoutMs: 1500,
      },
    });
    assert.deepEqual(s, {
      swarmId: 'starling',
      trackerPath: '/t',
      iceServers: ice,
      highDemandTimeWindow: 8,
      liveSyncDurationCount: 7,
      simultaneousHttpDownloads: 1,
      httpDownloadInitialTimeoutMs: 1500,
    });
  });

  it('refuses a tracker path that would leave the host', () => {
    const s = p2p.p2pSettings({ p2p: { enabled: true, swarmId: 's', trackerPath: '@evil.example/x' } });
    assert.equal(s.trackerPath, '/tracker');
  });
});

describe('trackerUrl', () => {
  it('uses ws on http and wss on https, on the page host', () => {
    assert.equal(p2p.trackerUrl({ protocol: 'http:', host: '192.168.1.5:8080' }, '/tracker'), 'ws://192.168.1.5:8080/tracker');
    assert.equal(p2p.trackerUrl({ protocol: 'https:', host: 'live.example' }, '/tracker'), 'wss://live.example/tracker');
  });
});

describe('coreConfig', () => {
  const settings = p2p.p2pSettings({ p2p: { enabled: true, swarmId: 'starling', iceServers: [{ urls: 'stun:s' }] } });
  const validate = async () => true;

  it('passes the swarm id unchanged and only our tracker', () => {
    const c = p2p.coreConfig(settings, { tracker: 'ws://h/tracker', mode: 'share', peerId: '-PM0203-1abcdefghijk', validateP2PSegment: validate });
    assert.deepEqual(c, {
      announceTrackers: ['ws://h/tracker'],
      trackerClientVersionPrefix: '-PM0203-1abcdefghijk',
      rtcConfig: { iceServers: [{ urls: 'stun:s' }] },
      swarmId: 'starling',
      highDemandTimeWindow: 1,
      simultaneousHttpDownloads: 2,
      httpDownloadInitialTimeoutMs: 0,
      validateP2PSegment: validate,
      isP2PDisabled: false,
      isP2PUploadDisabled: false,
    });
  });

  it('disables upload in consume mode', () => {
    const c = p2p.coreConfig(settings, { tracker: 't', mode: 'consume', validateP2PSegment: validate });
    assert.equal(c.isP2PUploadDisabled, true);
    assert.equal(c.isP2PDisabled, false);
  });

  it('disables P2P altogether when the viewer turned it off', () => {
    const c = p2p.coreConfig(settings, { tracker: 't', mode: 'off', validateP2PSegment: validate });
    assert.equal(c.isP2PDisabled, true);
    assert.equal(c.isP2PUploadDisabled, true);
  });
});

describe('dynamicShareConfig', () => {
  it('maps each share mode to the engine settings the switch changes in place', () => {
    assert.deepEqual(p2p.dynamicShareConfig('share'), { isP2PDisabled: false, isP2PUploadDisabled: false });
    assert.deepEqual(p2p.dynamicShareConfig('consume'), { isP2PDisabled: false, isP2PUploadDisabled: true });
    assert.deepEqual(p2p.dynamicShareConfig('off'), { isP2PDisabled: true, isP2PUploadDisabled: true });
  });
});

describe('shareMode', () => {
  it('follows a stored choice', () => {
    assert.equal(p2p.shareMode(memoryStorage({ [p2p.SHARE_KEY]: 'on' }), { type: 'cellular' }), 'share');
    assert.equal(p2p.shareMode(memoryStorage({ [p2p.SHARE_KEY]: 'off' }), undefined), 'off');
  });

  it('defaults to share, and to consume-only on cellular or data saver', () => {
    assert.equal(p2p.shareMode(memoryStorage(), undefined), 'share');
    assert.equal(p2p.shareMode(memoryStorage(), { type: 'wifi', saveData: false }), 'share');
    assert.equal(p2p.shareMode(memoryStorage(), { type: 'cellular' }), 'consume');
    assert.equal(p2p.shareMode(memoryStorage(), { saveData: true }), 'consume');
  });

  it('round-trips a saved choice', () => {
    const storage = memoryStorage();
    p2p.saveShareChoice(storage, false);
    assert.equal(p2p.shareMode(storage, undefined), 'off');
    p2p.saveShareChoice(storage, true);
    assert.equal(p2p.shareMode(storage, { type: 'cellular' }), 'share');
  });

  it('works when the browser refuses storage', () => {
    const storage = p2p.storageOr(() => {
      throw new Error('SecurityError');
    });
    assert.equal(p2p.shareMode(storage, undefined), 'share');
    p2p.saveShareChoice(storage, false);
    assert.equal(p2p.shareMode(storage, undefined), 'off');
  });
});

describe('segmentListLocation', () => {
  const cases = [
    ['http://h/hls/0/seg-17952928900.ts', 'http://h/hls/0/segments.json', 'seg-17952928900.ts'],
    ['https://h:8443/hls/2/seg-1.ts?token=x#f', 'https://h:8443/hls/2/segments.json', 'seg-1.ts'],
    ['http://h/hls/0/seg%20a.ts', 'http://h/hls/0/segments.json', 'seg a.ts'],
    ['http://h/seg-1.ts', 'http://h/segments.json', 'seg-1.ts'],
  ];
  for (const [url, listUrl, name] of cases) {
    it(url, () => assert.deepEqual(p2p.segmentListLocation(url), { listUrl, name }));
  }

  for (const url of ['http://h/hls/0/', 'not a url', 'http://h/hls/0/%E0%A4%A', 'http://h/hls/0/a%2Fb.ts']) {
    it(`rejects ${url}`, () => assert.equal(p2p.segmentListLocation(url), null));
  }

  // Segments from a bucket or CDN: the lists stay on the server.
  const base = 'https://stream.example/hls/';
  const remote = [
    ['https://cdn.example/live/0/seg-17.ts', 'https://stream.example/hls/0/segments.json', 'seg-17.ts'],
    ['https://bucket.s3.example/prefix/deep/2/seg-1.ts?X-Amz=1', 'https://stream.example/hls/2/segments.json', 'seg-1.ts'],
    ['https://stream.example/hls/1/seg-5.ts', 'https://stream.example/hls/1/segments.json', 'seg-5.ts'],
  ];
  for (const [url, listUrl, name] of remote) {
    it(`${url} (page at ${base})`, () => assert.deepEqual(p2p.segmentListLocation(url, base), { listUrl, name }));
  }
  for (const url of ['https://cdn.example/seg-1.ts', 'https://cdn.example/x/seg-1.ts', 'https://cdn.example/..%2F/seg-1.ts']) {
    it(`rejects ${url} (page at ${base})`, () => assert.equal(p2p.segmentListLocation(url, base), null));
  }
});

describe('sha256Hex', () => {
  const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
  it('uses WebCrypto when there is one', async () => {
    assert.equal(await p2p.sha256Hex(bytes('abc'), webcrypto.subtle), abc);
  });
  it('falls back to @noble/hashes outside secure contexts', async () => {
    assert.equal(await p2p.sha256Hex(bytes('abc'), undefined), abc);
  });
});

describe('createSegmentValidator', () => {
  const URL0 = 'http://h/hls/0/seg-5.ts';
  const LIST0 = 'http://h/hls/0/segments.json';
  const good = bytes('segment five');

  // setup returns a validator whose list server answers from `answers`, one
  // per fetch (the last one repeats); an Error answer is a failed fetch.
  function setup(answers) {
    const calls = { fetches: [], sleeps: [], rejects: 0 };
    const validate = p2p.createSegmentValidator({
      fetchList: async (url) => {
        calls.fetches.push(url);
        const answer = answers[Math.min(calls.fetches.length - 1, answers.length - 1)];
        if (answer instanceof Error) throw answer;
        return answer;
      },
      sleep: async (ms) => {
        calls.sleeps.push(ms);
      },
      onReject: () => calls.rejects++,
    });
    return { validate, calls };
  }

  it('accepts a listed segment with the right hash, caching the list', async () => {
    const { validate, calls } = setup([{ 'seg-5.ts': hex(good) }]);
    assert.equal(await validate(URL0, undefined, good), true);
    assert.equal(await validate(URL0, undefined, good), true);
    assert.deepEqual(calls.fetches, [LIST0]);
    assert.equal(calls.rejects, 0);
  });

  it('accepts an upper-case hash', async () => {
    const { validate } = setup([{ 'seg-5.ts': hex(good).toUpperCase() }]);
    assert.equal(await validate(URL0, undefined, good), true);
  });

  it('rejects a segment whose bytes differ', async () => {
    const { validate, calls } = setup([{ 'seg-5.ts': hex(good) }]);
    assert.equal(await validate(URL0, undefined, corrupted(good)), false);
    assert.equal(calls.rejects, 1);
  });

  it('refetches a missing name 500 ms apart until it is listed', async () => {
    const { validate, calls } = setup([{}, { 'seg-4.ts': 'aa' }, { 'seg-5.ts': hex(good) }]);
    assert.equal(await validate(URL0, undefined, good), true);
    assert.equal(calls.fetches.length, 3);
    assert.deepEqual(calls.sleeps, [500, 500]);
  });

  it('gives up after 10 fetches', async () => {
    const { validate, calls } = setup([{ 'seg-4.ts': 'aa' }]);
    assert.equal(await validate(URL0, undefined, good), false);
    assert.equal(calls.fetches.length, 10);
    assert.equal(calls.sleeps.length, 9);
    assert.equal(calls.rejects, 1);
  });

  it('counts failed fetches as attempts', async () => {
    const { validate, calls } = setup([new Error('HTTP 503'), 'not json', { 'seg-5.ts': hex(good) }]);
    assert.equal(await validate(URL0, undefined, good), true);
    assert.equal(calls.fetches.length, 3);
  });

  it('checks a differing cached hash against a fresh list once', async () => {
    // The server restarted and reused the name for new bytes.
    const fresh = bytes('new segment five');
    const { validate, calls } = setup([{ 'seg-5.ts': hex(good) }, { 'seg-5.ts': hex(fresh) }]);
    assert.equal(await validate(URL0, undefined, good), true);
    assert.equal(await validate(URL0, undefined, fresh), true);
    assert.equal(calls.fetches.length, 2);
    assert.equal(calls.rejects, 0);
  });

  it('shares one fetch between concurrent validations', async () => {
    let release;
    const gate = new Promise((resolve) => (release = resolve));
    const fetches = [];
    const validate = p2p.createSegmentValidator({
      fetchList: async (url) => {
        fetches.push(url);
        await gate;
        return { 'seg-5.ts': hex(good), 'seg-6.ts': hex(bytes('six')) };
      },
      sleep: async () => {},
    });
    const results = Promise.all([
      validate(URL0, undefined, good),
      validate('http://h/hls/0/seg-6.ts', undefined, bytes('six')),
    ]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    release();
    assert.deepEqual(await results, [true, true]);
    assert.equal(fetches.length, 1);
  });

  it('keeps one list per rendition', async () => {
    const one = bytes('rendition one');
    const { validate, calls } = setup([{ 'seg-5.ts': hex(one) }]);
    assert.equal(await validate('http://h/hls/1/seg-5.ts', undefined, one), true);
    assert.deepEqual(calls.fetches, ['http://h/hls/1/segments.json']);
  });

  it('rejects what it cannot check', async () => {
    const list = { 'seg-5.ts': hex(good), __proto__: null };
    const { validate, calls } = setup([list]);
    assert.equal(await validate(URL0, { start: 0, end: 9 }, good), false);
    assert.equal(await validate('http://h/hls/0/', undefined, good), false);
    assert.equal(await validate('http://h/hls/0/constructor', undefined, good), false);
    assert.equal(await validate('http://h/hls/0/__proto__', undefined, good), false);
    assert.equal(calls.rejects, 4);
  });
});

describe('viewerId', () => {
  it('is 22 URL-safe characters, kept for the session', () => {
    const storage = memoryStorage();
    const id = p2p.viewerId(storage);
    assert.match(id, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(p2p.viewerId(storage), id);
    assert.notEqual(p2p.viewerId(memoryStorage()), id);
  });

  it('replaces a malformed stored id', () => {
    const storage = memoryStorage({ 'starling.viewerId': '<script>' });
    assert.match(p2p.viewerId(storage), /^[A-Za-z0-9_-]{22}$/);
  });
});

describe('PlaybackStats', () => {
  function fakeEngine() {
    const listeners = {};
    return {
      addEventListener: (name, fn) => (listeners[name] = fn),
      emit: (name, ...args) => listeners[name](...args),
    };
  }

  it('sums engine events into cumulative totals', () => {
    const stats = new p2p.PlaybackStats();
    assert.equal(stats.p2pShare(), null);
    const engine = fakeEngine();
    stats.watch(engine, () => true);
    stats.enabled = true;
    engine.emit('onChunkDownloaded', 300, 'http');
    engine.emit('onChunkDownloaded', 100, 'p2p', 'peer1');
    engine.emit('onChunkUploaded', 50, 'peer1');
    engine.emit('onPeerConnect', { peerId: 'a', streamType: 'main' });
    engine.emit('onPeerConnect', { peerId: 'b', streamType: 'main' });
    engine.emit('onPeerClose', { peerId: 'a', streamType: 'main' });
    engine.emit('onPeerClose', { peerId: 'a', streamType: 'main' });
    stats.p2pRejectedSegments++;
    assert.deepEqual(stats.snapshot(), {
      enabled: true,
      httpBytes: 300,
      p2pBytes: 100,
      p2pUploadedBytes: 50,
      p2pRejectedSegments: 1,
      peers: 1,
    });
    assert.equal(stats.p2pShare(), 0.25);
    assert.deepEqual(stats.report('v'), {
      viewerId: 'v',
      httpBytes: 300,
      p2pBytes: 100,
      p2pUploadedBytes: 50,
      p2pRejectedSegments: 1,
      p2pEnabled: true,
    });
  });

  it("ignores a destroyed player's engine", () => {
    const stats = new p2p.PlaybackStats();
    const engine = fakeEngine();
    let current = true;
    stats.watch(engine, () => current);
    current = false;
    engine.emit('onChunkDownloaded', 300, 'http');
    engine.emit('onPeerConnect', { peerId: 'a', streamType: 'main' });
    assert.equal(stats.httpBytes, 0);
    assert.equal(stats.peers.size, 0);
  });
});

describe('keepSegmentsForPeers', () => {
  it('gives hls.js a copy of the stored bytes, the same one on progress and success', () => {
    const stored = bytes('stored segment');
    const seen = [];
    const hls = {
      config: {
        fLoader: class {
          load(context, config, callbacks) {
            callbacks.onProgress({}, context, stored, null);
            callbacks.onSuccess({ data: stored, url: context.url }, {}, context, null);
          }
        },
      },
    };
    p2p.keepSegmentsForPeers(hls);
    new hls.config.fLoader().load({ url: 'u' }, {}, {
      onProgress: (_stats, _ctx, data) => seen.push(data),
      onSuccess: (response) => seen.push(response.data),
      onError: () => {},
    });
    assert.equal(seen.length, 2);
    assert.notEqual(seen[0], stored);
    assert.equal(seen[0], seen[1]);
    assert.deepEqual(new Uint8Array(seen[0]), new Uint8Array(stored));
    // hls.js transferring its copy to the worker leaves the stored one intact.
    structuredClone(seen[0], { transfer: [seen[0]] });
    assert.equal(seen[0].byteLength, 0);
    assert.equal(stored.byteLength, 14);
  });
});

describe('TamperingSegmentStorage', () => {
  const MAIN = { highDemandTimeWindow: 4 };

  async function storage() {
    const s = new TamperingSegmentStorage();
    await s.initialize({}, MAIN, MAIN);
    s.changes = [];
    s.setSegmentChangeCallback((id) => s.changes.push(id));
    return s;
  }

  it('gives the local player the true bytes and peers corrupted ones', async () => {
    const s = await storage();
    const data = bytes('segment 7 data');
    await s.storeSegment('sw', 'st', 7, data, 14, 16, 'main', true);
    assert.deepEqual(s.changes, ['st']);
    assert.deepEqual(s.getStoredSegmentIds('sw', 'st'), [7]);

    // The player's read: HybridLoader.loadSegment's synchronous sequence.
    s.onSegmentRequested('sw', 'st', 7, 14, 16, 'main', true);
    assert.equal(s.hasSegment('sw', 'st', 7), true);
    const local = s.getSegmentData('sw', 'st', 7);
    assert.equal(await local, data);

    // A peer's read comes later, on its own.
    const upload = await s.getSegmentData('sw', 'st', 7);
    assert.notEqual(hex(upload), hex(data));
    const diff = [...new Uint8Array(upload)].filter((b, i) => b !== new Uint8Array(data)[i]);
    assert.equal(diff.length, 1);
    assert.equal(hex(data), hex(bytes('segment 7 data')), 'the stored copy is untouched');
  });

  it('corrupts a peer read that lands between a player request and its next task', async () => {
    const s = await storage();
    await s.storeSegment('sw', 'st', 7, bytes('seven'), 14, 16, 'main', true);
    await s.storeSegment('sw', 'st', 8, bytes('eight'), 16, 18, 'main', true);
    s.onSegmentRequested('sw', 'st', 9, 18, 20, 'main', true); // not stored yet
    assert.notEqual(hex(await s.getSegmentData('sw', 'st', 8)), hex(bytes('eight')));
    s.onSegmentRequested('sw', 'st', 7, 14, 16, 'main', true);
    await Promise.resolve(); // the player reads in the same task; this one is late
    assert.notEqual(hex(await s.getSegmentData('sw', 'st', 7)), hex(bytes('seven')));
  });

  it('drops live segments the playhead has left behind by more than highDemandTimeWindow', async () => {
    const s = await storage();
    await s.storeSegment('sw', 'st', 1, bytes('one'), 0, 2, 'main', true);
    await s.storeSegment('sw', 'st', 2, bytes('two'), 2, 4, 'main', true);
    s.onPlaybackUpdated(7, 1);
    await s.storeSegment('sw', 'st', 5, bytes('five'), 8, 10, 'main', true);
    assert.deepEqual(s.getStoredSegmentIds('sw', 'st'), [2, 5]);
    assert.equal(s.getUsage().totalCapacity, 1024);
    s.destroy();
    assert.equal(s.hasSegment('sw', 'st', 2), false);
  });
});

describe('newPeerId', () => {
  it('is 20 characters with the library prefix, seeds before uploaders before consumers', () => {
    const seed = p2p.newPeerId('seed', () => 0.999);
    const share = p2p.newPeerId('share', () => 0.999);
    const consume = p2p.newPeerId('consume', () => 0);
    for (const id of [seed, share, consume]) assert.equal(id.length, 20);
    assert.match(share, /^-PM0203-1[A-Za-z0-9]{11}$/);
    assert.ok(seed < share, `${seed} sorts after ${share}`);
    assert.ok(share < consume, `${share} sorts after ${consume}`);
  });
});

describe('FirstHolder', () => {
  // An engine stand-in: addEventListener and fire.
  const engine = () => {
    const handlers = {};
    return {
      addEventListener: (name, fn) => (handlers[name] ||= []).push(fn),
      fire: (name, peer) => (handlers[name] || []).forEach((fn) => fn(peer)),
    };
  };

  it('elects the lowest peer id among itself and its main-stream peers, and says so on each change', () => {
    const changes = [];
    const e = engine();
    new p2p.FirstHolder('-PM0203-0M', (first) => changes.push(first)).watch(e, () => true);
    assert.deepEqual(changes, [true], 'alone, it goes first');
    e.fire('onPeerConnect', { peerId: '-PM0203-0Z', streamType: 'main' });
    e.fire('onPeerConnect', { peerId: '-PM0203-0A', streamType: 'secondary' });
    assert.deepEqual(changes, [true], 'a higher id, or another stream, changes nothing');
    e.fire('onPeerConnect', { peerId: '-PM0203-0A', streamType: 'main' });
    assert.deepEqual(changes, [true, false]);
    e.fire('onPeerClose', { peerId: '-PM0203-0A', streamType: 'main' });
    assert.deepEqual(changes, [true, false, true], 'when the first holder leaves, the next takes over');
  });

  it('ignores the events of an engine that is no longer the page’s', () => {
    const changes = [];
    const e = engine();
    let current = true;
    new p2p.FirstHolder('-PM0203-0M', (first) => changes.push(first)).watch(e, () => current);
    current = false;
    e.fire('onPeerConnect', { peerId: '-PM0203-0A', streamType: 'main' });
    assert.deepEqual(changes, [true]);
  });
});

describe('withoutDeliveryDirectives', () => {
  it('drops only the blocking-reload parameters', () => {
    assert.equal(p2p.withoutDeliveryDirectives('http://h/hls/0/stream.m3u8?_HLS_msn=12&_HLS_part=1&_HLS_skip=YES'), 'http://h/hls/0/stream.m3u8');
    assert.equal(p2p.withoutDeliveryDirectives('http://h/hls/0/stream.m3u8?token=a&_HLS_msn=12'), 'http://h/hls/0/stream.m3u8?token=a');
    assert.equal(p2p.withoutDeliveryDirectives('http://h/hls/0/stream.m3u8'), 'http://h/hls/0/stream.m3u8');
    assert.equal(p2p.withoutDeliveryDirectives('not a url'), 'not a url');
  });
});
