// The dashboard: is the stream healthy, how many watch, and how much of
// the video the viewers carry to each other, updating live.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { get } from './api.js';
import { bytes, duration, mergePoints, percent, series } from './format.js';
import { Card, html, Table, usePoll } from './ui.js';

// Chart draws timeline fields with uPlot, resized with its box.
function Chart({ label, points, fields, names, unit, max }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const width = () => Math.max(200, box.current.clientWidth);
    plot.current = new uPlot(
      {
        width: width(),
        height: 160,
        legend: { show: true },
        scales: { x: { time: true }, y: max ? { range: [0, max] } : { auto: true } },
        axes: [{}, { values: (u, v) => v.map((x) => (unit === '%' ? `${Math.round(x * 100)}%` : `${x}`)) }],
        series: [{}].concat(
          names.map((n, i) => ({ label: n, stroke: ['#2f7ae5', '#e5862f', '#3aa655'][i % 3], width: 2, points: { show: false } })),
        ),
      },
      series(points, fields),
      box.current,
    );
    const ro = new ResizeObserver(() => plot.current && plot.current.setSize({ width: width(), height: 160 }));
    ro.observe(box.current);
    return () => {
      ro.disconnect();
      plot.current.destroy();
      plot.current = null;
    };
  }, []);
  useEffect(() => {
    if (plot.current) plot.current.setData(series(points, fields));
  }, [points]);
  return html`<figure class="chart" aria-label=${label}><figcaption>${label}</figcaption><div ref=${box}></div></figure>`;
}

function Stat({ label, value, id }) {
  return html`<div class="stat" data-stat=${id}><span class="label">${label}</span><span class="value">${value}</span></div>`;
}

export function Dashboard() {
  const [status, setStatus] = useState(null);
  const [config, setConfig] = useState(null);
  const [points, setPoints] = useState([]);
  const [hw, setHW] = useState(null);
  const [error, setError] = useState(null);
  const last = useRef('');
  usePoll(async () => {
    try {
      setStatus(await get('/api/admin/status'));
      setError(null);
    } catch (e) {
      setError(e.message);
    }
  }, 2000);
  usePoll(async () => {
    const since = last.current ? '?since=' + encodeURIComponent(last.current) : '';
    const fresh = await get('/api/admin/timeline' + since);
    if (fresh.length) last.current = fresh[fresh.length - 1].time;
    setPoints((old) => mergePoints(old, fresh));
  }, 5000);
  usePoll(async () => setHW(await get('/api/admin/hardwarestats')), 10000);
  usePoll(async () => setConfig(await get('/api/admin/serverconfig')), 30000);

  if (!status) return html`<p class="muted" role="status">${error || 'Loading…'}</p>`;
  const h = status.health || {};
  const p2p = (status.p2p && status.p2p.playback) || {};
  const since = status.broadcaster && status.broadcaster.time;
  const uptime = since ? (Date.now() - Date.parse(since)) / 1000 : NaN;
  const lastOf = (list) => (list && list.length ? list[list.length - 1].value : NaN);
  const pct = (list) => (Number.isFinite(lastOf(list)) ? `${Math.round(lastOf(list))}%` : '–');
  const warnings = (h.warnings || []).filter(Boolean);
  const storage = status.storage || {};
  const variants = (config && config.videoSettings && config.videoSettings.videoQualityVariants) || [];
  return html`<div class="dashboard">
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <div class="stats" aria-live="polite">
      <${Stat} id="online" label="Stream" value=${status.online ? html`<span class="badge live">Online</span>` : html`<span class="badge">Offline</span>`} />
      <${Stat} id="uptime" label="Uptime" value=${status.online ? duration(uptime) : '–'} />
      <${Stat} id="viewers" label="Viewers now" value=${String(status.viewerCount ?? 0)} />
      <${Stat} id="peak" label="Peak (this stream / ever)" value=${`${status.sessionPeakViewerCount} / ${status.overallPeakViewerCount}`} />
      <${Stat} id="bitrate" label="Inbound bitrate" value=${status.online ? `${Math.round(h.ingestBitrateKbps)} kbit/s` : '–'} />
      <${Stat} id="framerate" label="Frame rate" value=${status.online ? `${(h.ingestFramerate || 0).toFixed(1)} fps` : '–'} />
      <${Stat} id="keyframe" label="Key-frame interval" value=${status.online && h.keyframeIntervalSeconds ? `${h.keyframeIntervalSeconds.toFixed(1)} s` : '–'} />
      <${Stat} id="speed" label="ffmpeg speed" value=${status.online && h.transcoderSpeed ? `${h.transcoderSpeed.toFixed(2)}×` : '–'} />
      <${Stat} id="offload" label="Carried by viewers (last minute)" value=${percent(p2p.offloadRatio || 0)} />
      <${Stat} id="chat" label="Chat (clients / messages)" value=${`${status.chat.clients} / ${status.chat.messages}`} />
      <${Stat} id="cpu" label="CPU" value=${hw ? pct(hw.cpu) : '–'} />
      <${Stat} id="memory" label="Memory" value=${hw ? pct(hw.memory) : '–'} />
      <${Stat} id="disk" label="Disk" value=${hw ? pct(hw.disk) : '–'} />
      <${Stat} id="storage" label="Storage" value=${storage.remote ? (storage.down ? `S3 down, ${storage.backlog} waiting` : 'S3') : 'this server'} />
    </div>
    ${warnings.length > 0 &&
    html`<${Card} title="Warnings" wide>
      <ul class="warnings">${warnings.map((w) => html`<li>${w}</li>`)}</ul>
    <//>`}
    <div class="charts">
      <${Chart} label="Viewers" points=${points} fields=${['viewers', 'p2pViewers']} names=${['viewers', 'sharing P2P']} />
      <${Chart} label="Share of the video carried by viewers" points=${points} fields=${['offloadRatio']} names=${['from peers']} unit="%" max=${1} />
      <${Chart} label="Inbound bitrate (kbit/s)" points=${points} fields=${['ingestKbps']} names=${['kbit/s']} />
      <${Chart} label="Chat messages" points=${points} fields=${['chatMessages']} names=${['messages']} />
    </div>
    <${Card} title="Output" wide>
      <p>Viewers got ${bytes(p2p.p2pBytes)} from each other and ${bytes(p2p.httpBytes)} from this server since it started.</p>
      <${Table} caption="Output per rendition" rows=${variants.map((v, i) => ({ v, out: (status.output || [])[i] }))} empty="No renditions."
        columns=${[
          { label: 'Rendition', render: (r) => r.v.name },
          { label: 'Set to', render: (r) => (r.v.videoPassthrough ? 'passthrough' : `${r.v.videoBitrate} kbit/s, ${r.v.scaledHeight || 'source'}p, ${r.v.framerate || 'source'} fps`) },
          { label: 'Putting out (last 30 s)', render: (r) => (status.online && r.out && r.out.segments ? `${Math.round(r.out.kbps)} kbit/s, ${r.out.segments} segments` : '–') },
        ]} />
      ${h.droppedFrames > 0 && html`<p>ffmpeg dropped ${h.droppedFrames} frames.</p>`}
    <//>
  </div>`;
}
