// Test hook for the integrity tests only (page URL with ?p2pTamper=1): a
// segment storage for p2p-media-loader that corrupts every segment this page
// uploads to peers, while its own player still gets the true bytes. Honest
// viewers must then reject this page's segments (validateP2PSegment) and
// fetch them over HTTP.
//
// The storage is the one place where p2p-media-loader 2.3.1 lets the page
// see what it uploads (core config customSegmentStorageFactory, types.ts).
// Both readers of a stored segment call getSegmentData; they differ in how:
//   - the local player: HybridLoader.loadSegment calls onSegmentRequested,
//     hasSegment and getSegmentData for that segment in one synchronous run
//     (hybrid-loader.ts, loadSegment);
//   - a peer: P2PLoader.onSegmentRequested calls getSegmentData alone, from a
//     data channel message, and uploads what it returns (p2p/loader.ts).
// So the read that follows onSegmentRequested for the same segment before
// the current task ends is the player's; every other read is an upload.
//
// The library's own storage (SegmentMemoryStorage) is not exported, so this
// is a small stand-in with the same live eviction rule: a segment goes once
// the playhead is highDemandTimeWindow past its end.

const MiB = 1024 * 1024;
const CAPACITY_MIB = 1024;

const keyOf = (streamId, segmentId) => `${streamId}|${segmentId}`;

// corrupted returns a copy of data with its middle byte flipped.
export function corrupted(data) {
  const copy = new Uint8Array(data.slice(0));
  if (copy.length > 0) copy[copy.length >> 1] ^= 0xff;
  return copy.buffer;
}

export class TamperingSegmentStorage {
  constructor() {
    this.items = new Map(); // key -> { streamId, segmentId, data, endTime }
    this.position = 0;
    this.highDemandTimeWindow = 0;
    this.playerRead = null; // key the local player is reading in this task
    this.onChange = () => {};
  }

  async initialize(_common, mainStream, secondaryStream) {
    this.highDemandTimeWindow = Math.max(mainStream.highDemandTimeWindow, secondaryStream.highDemandTimeWindow);
  }

  onPlaybackUpdated(position) {
    this.position = position;
  }

  onSegmentRequested(_swarmId, streamId, segmentId) {
    const key = keyOf(streamId, segmentId);
    this.playerRead = key;
    queueMicrotask(() => {
      if (this.playerRead === key) this.playerRead = null;
    });
  }

  async storeSegment(_swarmId, streamId, segmentId, data, _startTime, endTime, _streamType, isLive) {
    const changed = new Set([streamId]);
    if (isLive) {
      for (const [key, item] of this.items) {
        if (this.position > item.endTime + this.highDemandTimeWindow) {
          this.items.delete(key);
          changed.add(item.streamId);
        }
      }
    }
    this.items.set(keyOf(streamId, segmentId), { streamId, segmentId, data, endTime });
    changed.forEach((id) => this.onChange(id));
  }

  async getSegmentData(_swarmId, streamId, segmentId) {
    const key = keyOf(streamId, segmentId);
    const item = this.items.get(key);
    if (!item) return undefined;
    if (key === this.playerRead) {
      this.playerRead = null;
      return item.data;
    }
    return corrupted(item.data);
  }

  getUsage() {
    let used = 0;
    for (const item of this.items.values()) used += item.data.byteLength;
    return { totalCapacity: CAPACITY_MIB, usedCapacity: used / MiB };
  }

  hasSegment(_swarmId, streamId, segmentId) {
    return this.items.has(keyOf(streamId, segmentId));
  }

  getStoredSegmentIds(_swarmId, streamId) {
    const ids = [];
    for (const item of this.items.values()) if (item.streamId === streamId) ids.push(item.segmentId);
    return ids;
  }

  setSegmentChangeCallback(callback) {
    this.onChange = callback;
  }

  destroy() {
    this.items.clear();
  }
}
