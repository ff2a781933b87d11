import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytes, duration, lines, mergePoints, percent, presetVariant, randomKey, route, series, unlines } from '../src/admin/format.js';

test('route finds the page of a path', () => {
  const pages = { '': 1, video: 1, logs: 1 };
  assert.equal(route('/admin/', pages), '');
  assert.equal(route('/admin', pages), '');
  assert.equal(route('/admin/video', pages), 'video');
  assert.equal(route('/admin/video/', pages), 'video');
  assert.equal(route('/admin/nope', pages), null);
  assert.equal(route('/admin/constructor', pages), null);
});

test('lines and unlines', () => {
  assert.deepEqual(lines(' a \n\n b\n'), ['a', 'b']);
  assert.equal(unlines(['a', 'b']), 'a\nb');
  assert.equal(unlines(null), '');
});

test('timeline points merge once each and keep the last ones', () => {
  const p = (t) => ({ time: `2026-12-01T00:00:0${t}Z`, viewers: t });
  const merged = mergePoints([p(1), p(2)], [p(2), p(3), p(4)], 3);
  assert.deepEqual(merged.map((x) => x.viewers), [2, 3, 4]);
  const cols = series(merged, ['viewers', (x) => x.viewers * 2]);
  assert.equal(cols.length, 3);
  assert.deepEqual(cols[1], [2, 3, 4]);
  assert.deepEqual(cols[2], [4, 6, 8]);
  assert.equal(cols[0][1] - cols[0][0], 1);
});

test('figures read as people read them', () => {
  assert.equal(bytes(0), '0 B');
  assert.equal(bytes(1500), '1.5 KB');
  assert.equal(bytes(2_500_000_000), '2.5 GB');
  assert.equal(bytes(NaN), '–');
  assert.equal(duration(59), '59 s');
  assert.equal(duration(61), '1 min 01 s');
  assert.equal(duration(3 * 3600 + 5 * 60), '3 h 05 min');
  assert.equal(percent(0.716), '72%');
  assert.equal(percent(NaN), '–');
});

test('presets and generated keys', () => {
  const v = presetVariant('480p');
  assert.equal(v.scaledHeight, 480);
  assert.equal(v.videoPassthrough, false);
  assert.equal(presetVariant('8k'), null);
  const a = randomKey();
  const b = randomKey();
  assert.ok(a.length >= 20 && a !== b && /^[a-z0-9]+$/.test(a));
});
