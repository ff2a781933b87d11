// Pure helpers of the panel, tested in Node.

export function bytes(n) {
  if (!Number.isFinite(n) || n < 0) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.floor(seconds % 60);
  const m = Math.floor(seconds / 60) % 60;
  const h = Math.floor(seconds / 3600);
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min`;
  if (m > 0) return `${m} min ${String(s).padStart(2, '0')} s`;
  return `${s} s`;
}

export function percent(ratio) {
  if (!Number.isFinite(ratio)) return '–';
  return `${Math.round(ratio * 100)}%`;
}

// lines turns a textarea's text into a list, one item a line, empty
// lines dropped; unlines the other way.
export function lines(text) {
  return String(text)
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function unlines(list) {
  return (list || []).join('\n');
}

// route finds the page of a path under /admin/: "" is the dashboard.
export function route(pathname, pages) {
  const rest = pathname.replace(/^\/admin\/?/, '').replace(/\/+$/, '');
  const name = rest.split('/')[0];
  return Object.prototype.hasOwnProperty.call(pages, name) ? name : null;
}

// series turns timeline points into uPlot's columns: times in seconds and
// one array a field.
export function series(points, fields) {
  const out = [points.map((p) => Date.parse(p.time) / 1000)];
  for (const f of fields) out.push(points.map((p) => (typeof f === 'function' ? f(p) : p[f])));
  return out;
}

// mergePoints adds new timeline points to old ones, once each, keeping the
// last hour.
export function mergePoints(old, fresh, keep = 720) {
  const seen = new Set(old.map((p) => p.time));
  const all = old.concat(fresh.filter((p) => !seen.has(p.time)));
  return all.slice(Math.max(0, all.length - keep));
}

// presets are the video variants the panel offers to start from.
export const PRESETS = [
  { name: '1080p', videoBitrate: 6000, scaledHeight: 1080, framerate: 30, audioBitrate: 128 },
  { name: '720p', videoBitrate: 2500, scaledHeight: 720, framerate: 30, audioBitrate: 128 },
  { name: '480p', videoBitrate: 1200, scaledHeight: 480, framerate: 30, audioBitrate: 96 },
  { name: '360p', videoBitrate: 700, scaledHeight: 360, framerate: 30, audioBitrate: 64 },
];

export function presetVariant(name) {
  const p = PRESETS.find((x) => x.name === name);
  if (!p) return null;
  return {
    name: p.name,
    videoPassthrough: false,
    audioPassthrough: false,
    videoBitrate: p.videoBitrate,
    audioBitrate: p.audioBitrate,
    scaledWidth: 0,
    scaledHeight: p.scaledHeight,
    framerate: p.framerate,
    cpuUsageLevel: 2,
  };
}

// randomKey is a strong stream key, for the "generate" button.
export function randomKey(bytesLen = 18) {
  const b = new Uint8Array(bytesLen);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(36).padStart(2, '0'))
    .join('')
    .slice(0, 28);
}
