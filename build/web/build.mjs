// Builds the viewer page into ../../static/web (served by the Go binary at "/").
//
//   npm ci && npm run build
//
// Output (all paths relative to static/web):
//   index.html                      from src/index.html, placeholders replaced
//   favicon.svg                     copied from src/
//   third-party-licenses.txt        licences of the bundled code
//   assets/app-[hash].js|.css       esbuild bundles (hls.js included, never a CDN)
//   assets/hls.worker-[hash].js     hls.js transmuxer worker, see below
//
// The output is committed, so the build must be deterministic: same sources and
// lockfile give byte-identical files (CI rebuilds and diffs). Nothing here may
// depend on the time, the machine or the checkout path.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '../../static/web');
const assetsDir = path.join(outDir, 'assets');
const require = createRequire(import.meta.url);

// URL path under which the Go server serves a file in outDir.
const urlOf = (file) => '/' + path.relative(outDir, file).split(path.sep).join('/');

// Start from an empty directory so stale hashed files never accumulate.
fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(assetsDir, { recursive: true });

// hls.js's ES module build has no inline worker; it only uses a worker when
// given config.workerPath. Ship the prebuilt worker from the same package
// version as its own content-hashed file (worker-src 'self' allows it).
// Its source map is not shipped, so drop the comment pointing at it.
const hlsVersion = require('hls.js/package.json').version;
const workerCode =
  `/*! hls.js ${hlsVersion} transmuxer worker | Apache-2.0 | see /third-party-licenses.txt */\n` +
  fs
    .readFileSync(require.resolve('hls.js/dist/hls.worker.js'), 'utf8')
    .replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
const workerHash = createHash('sha256').update(workerCode).digest('hex').slice(0, 8).toUpperCase();
const workerFile = path.join(assetsDir, `hls.worker-${workerHash}.js`);
fs.writeFileSync(workerFile, workerCode);

const result = await build({
  absWorkingDir: here,
  entryPoints: ['src/main.js', 'src/style.css'],
  entryNames: 'app-[hash]',
  outdir: assetsDir,
  bundle: true,
  minify: true,
  format: 'esm',
  // es2020 for the JS syntax; the browser list only guides CSS lowering.
  target: ['es2020', 'chrome90', 'firefox90', 'safari14', 'edge90'],
  legalComments: 'eof',
  sourcemap: false,
  metafile: true,
  define: { __HLS_WORKER_URL__: JSON.stringify(urlOf(workerFile)) },
  logLevel: 'warning',
});

const bundleUrl = (ext) => {
  const outputs = Object.entries(result.metafile.outputs)
    .filter(([file, meta]) => meta.entryPoint && file.endsWith(ext))
    .map(([file]) => urlOf(path.resolve(here, file)));
  if (outputs.length !== 1) throw new Error(`expected one ${ext} bundle, got ${outputs.join(', ')}`);
  return outputs[0];
};

// index.html: each placeholder must appear exactly once.
let html = fs.readFileSync(path.join(here, 'src/index.html'), 'utf8');
for (const [placeholder, url] of [
  ['%APP_JS%', bundleUrl('.js')],
  ['%APP_CSS%', bundleUrl('.css')],
]) {
  const parts = html.split(placeholder);
  if (parts.length !== 2) throw new Error(`src/index.html: ${placeholder} must appear exactly once`);
  html = parts.join(url);
}
const leftover = html.match(/%[A-Z_]+%/);
if (leftover) throw new Error(`src/index.html: unknown placeholder ${leftover[0]}`);
fs.writeFileSync(path.join(outDir, 'index.html'), html);

fs.copyFileSync(path.join(here, 'src/favicon.svg'), path.join(outDir, 'favicon.svg'));

// Apache-2.0 asks that the licence travel with the code: hls.js's own LICENSE
// file verbatim, after our notice listing what hls.js bundles itself.
fs.writeFileSync(
  path.join(outDir, 'third-party-licenses.txt'),
  fs.readFileSync(path.join(here, 'src/third-party-licenses.txt'), 'utf8').replace('%HLS_VERSION%', hlsVersion) +
    fs.readFileSync(path.join(path.dirname(require.resolve('hls.js/package.json')), 'LICENSE'), 'utf8'),
);

for (const file of fs.readdirSync(outDir, { recursive: true }).sort()) {
  const abs = path.join(outDir, file);
  if (fs.statSync(abs).isFile()) console.log(`static/web/${file.split(path.sep).join('/')}  ${fs.statSync(abs).size} B`);
}
