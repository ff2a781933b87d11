// Pure logic of the viewer page around the player: the quality menu, the
// live edge, the admin's links and action buttons. No DOM and no player
// here, so node can test it (test/page.test.js).
import { safeHref, sameOriginPath } from './chat.js';

// qualityOptions turns hls.js's levels into the quality menu: Auto (hls.js
// picks, value -1), then each rendition by its level index, best first.
// Renditions of one height are told apart by their bitrate.
export function qualityOptions(levels) {
  const list = (Array.isArray(levels) ? levels : []).map((l, index) => ({
    index,
    height: Number.isFinite(l && l.height) && l.height > 0 ? l.height : 0,
    bitrate: Number.isFinite(l && l.bitrate) && l.bitrate > 0 ? l.bitrate : 0,
  }));
  const heights = new Map();
  for (const l of list) heights.set(l.height, (heights.get(l.height) || 0) + 1);
  const kbps = (b) => `${Math.round(b / 1000)} kbps`;
  const label = (l) => {
    if (!l.height) return l.bitrate ? kbps(l.bitrate) : `Rendition ${l.index + 1}`;
    return heights.get(l.height) > 1 && l.bitrate ? `${l.height}p (${kbps(l.bitrate)})` : `${l.height}p`;
  };
  list.sort((a, b) => b.height - a.height || b.bitrate - a.bitrate || a.index - b.index);
  return [{ value: -1, label: 'Auto' }, ...list.map((l) => ({ value: l.index, label: label(l) }))];
}

// LIVE_SLACK_S is how far behind hls.js's target latency the player may be
// and still read "Live": a stall of a second or two is not "behind".
export const LIVE_SLACK_S = 3;

// atLiveEdge says whether the player plays near the live edge, from
// hls.js's latency and targetLatency (seconds). Unknown figures count as
// live: right after start-up hls.js has none yet.
export function atLiveEdge({ latency, targetLatency, paused }) {
  if (paused) return false;
  if (!Number.isFinite(latency) || !Number.isFinite(targetLatency)) return true;
  return latency - targetLatency <= LIVE_SLACK_S;
}

// Latency steering (main.js steerLatency). off is how far the player is
// behind hls.js's target latency, seconds (negative: ahead of it).
// hls.js's latency follows the live edge between playlist updates, so
// it is smooth: half a second either way is no jitter.
export const CATCH_UP_S = 0.5; // behind by more: 1.1x until back on target
export const CATCH_UP_FAST_S = 2; // by more: 1.25x
export const JUMP_TO_LIVE_S = 8; // by more: straight to the target

// steerRate is the playback rate for off, given the rate now: a viewer
// who fell back (a stall, a paused or hidden tab) catches up, faster the
// further behind it is, and keeps catching up until back on target; from
// the most a viewer can be behind without jumping (JUMP_TO_LIVE_S) that
// takes 6 / 0.25 + 2 / 0.1 = 44 s. A sharing viewer ahead of the target
// slows down: one who started while the playlist was short plays where
// segments only come over HTTP. Audio keeps its pitch.
export function steerRate({ off, rate, sharing }) {
  if (!Number.isFinite(off)) return rate;
  if (off > CATCH_UP_FAST_S) return 1.25;
  if (off > CATCH_UP_S || (rate > 1 && off > 0)) return 1.1;
  if (sharing && (off < -CATCH_UP_S || (rate < 1 && off < 0))) return 0.9;
  return 1;
}

// behindLive says how far behind the live edge the player is: hls.js's
// latency (the playhead to the end of the newest listed segment), to a
// tenth of a second below 10 s.
export function behindLive(latency) {
  if (!Number.isFinite(latency) || latency < 0) return '';
  return latency < 10 ? `${latency.toFixed(1)} s behind` : `${Math.round(latency)} s behind`;
}

// socialLinks keeps the admin's social handles that are http(s) links.
export function socialLinks(handles) {
  if (!Array.isArray(handles)) return [];
  const out = [];
  for (const h of handles) {
    const url = h && safeHref(h.url);
    if (!url) continue;
    const platform = typeof h.platform === 'string' && h.platform.trim() ? h.platform.trim() : new URL(url).host;
    out.push({ platform, url });
  }
  return out;
}

// actionKind says how an external action button opens:
//   'html'  its HTML is shown in a dialog, through the sanitiser
//   'frame' its page opens in a dialog, in a sandboxed frame: only for a
//           page of this origin, which the page's CSP (frame-src 'self')
//           allows, and only when the admin did not ask for a new tab
//   'tab'   its page opens in a new tab
//   null    nothing to open: the button is not shown
// pageOrigin is location.origin.
export function actionKind(action, pageOrigin) {
  if (!action || typeof action.title !== 'string' || !action.title.trim()) return null;
  if (typeof action.html === 'string' && action.html.trim() && !action.url) return 'html';
  const url = actionURL(action, pageOrigin);
  if (!url) return null;
  if (action.openExternally) return 'tab';
  return new URL(url).origin === pageOrigin ? 'frame' : 'tab';
}

// actionURL is an action's page as an absolute URL: an http(s) link, or a
// path on this origin; null for anything else (javascript:, data:, ...).
export function actionURL(action, pageOrigin) {
  if (!action || typeof action.url !== 'string') return null;
  const path = sameOriginPath(action.url.trim());
  if (path) return new URL(path, pageOrigin).href;
  return safeHref(action.url);
}

// actionColor is a colour for the button, if it is a plain CSS colour
// (the admin's, but it becomes an inline style property, never markup).
export function actionColor(color) {
  return typeof color === 'string' && /^(#[0-9a-f]{3,8}|[a-z]{3,20}|(rgb|hsl)a?\([0-9., %]{5,40}\))$/i.test(color.trim())
    ? color.trim()
    : '';
}

// playerKey maps a key press on the player to a control, or null.
export function playerKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return null;
  switch (e.key) {
    case ' ':
    case 'k':
    case 'K':
      return 'play';
    case 'm':
    case 'M':
      return 'mute';
    case 'f':
    case 'F':
      return 'fullscreen';
    case 'l':
    case 'L':
      return 'live';
    default:
      return null;
  }
}
