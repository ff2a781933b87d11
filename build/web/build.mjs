// Builds the viewer page into ../../static/web (served by the Go binary at "/").
//
//   npm ci --ignore-scripts && npm run build
//
// Output (all paths relative to static/web):
//   index.html                      from src/index.html, placeholders replaced
//   favicon.svg                     copied from src/
//   third-party-licenses.txt        licences of the bundled code
//   assets/app-[hash].js|.css       esbuild bundles (hls.js, p2p-media-loader and
//                                   @noble/hashes included, never a CDN)
//   assets/hls.worker-[hash].js     hls.js transmuxer worker, see below
//   assets/emoji-[version]/*.svg    the chat picker's Twemoji images, only those
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
import { bundleUrl, fillPlaceholders } from './bundle.mjs';
import { EMOJI, emojiFile } from './src/emoji.js';

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

// The emoji the chat picker offers, as images from the Twemoji set, so that
// they look the same on every system. Only those are copied (the set has
// about 3,800). The version is in the directory name: the files are cached
// for good under /assets/.
const twemojiVersion = JSON.parse(
  fs.readFileSync(path.join(here, 'node_modules/@discordapp/twemoji/package.json'), 'utf8'),
).version;
const emojiDir = path.join(assetsDir, `emoji-${twemojiVersion}`);
fs.mkdirSync(emojiDir);
for (const [char] of EMOJI) {
  const file = emojiFile(char);
  fs.copyFileSync(path.join(here, 'node_modules/@discordapp/twemoji/dist/svg', file), path.join(emojiDir, file));
}

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
  // p2p-media-loader-core's package.json maps this condition to its
  // self-contained browser build (bittorrent-tracker and its Node polyfills
  // included). It applies to every import of the package, ours and
  // p2p-media-loader-hlsjs's, so the bundle holds one copy and one Core class
  // (checked below).
  conditions: ['p2pml:core-as-bundle'],
  define: {
    __HLS_WORKER_URL__: JSON.stringify(urlOf(workerFile)),
    __EMOJI_BASE__: JSON.stringify(urlOf(emojiDir) + '/'),
  },
  logLevel: 'warning',
});

// Exactly one copy of p2p-media-loader-core, and it is the browser bundle.
const coreInputs = Object.keys(result.metafile.inputs).filter((file) => file.includes('p2p-media-loader-core/'));
if (coreInputs.length !== 1 || !coreInputs[0].endsWith('/dist/p2p-media-loader-core.es.js')) {
  throw new Error(`expected p2p-media-loader-core once, as its dist bundle; got ${coreInputs.join(', ')}`);
}

// index.html: each placeholder must appear exactly once.
const html = fillPlaceholders(
  fs.readFileSync(path.join(here, 'src/index.html'), 'utf8'),
  [
    ['%APP_JS%', bundleUrl(result, here, urlOf, '.js')],
    ['%APP_CSS%', bundleUrl(result, here, urlOf, '.css')],
  ],
  'src/index.html',
);
fs.writeFileSync(path.join(outDir, 'index.html'), html);

fs.copyFileSync(path.join(here, 'src/favicon.svg'), path.join(outDir, 'favicon.svg'));

// Apache-2.0 asks that the licence travel with the code: our notice listing
// everything the bundles contain, then hls.js's LICENSE file and
// p2p-media-loader's (the full Apache-2.0 text) verbatim.
// (p2p-media-loader's exports hide package.json from require.resolve.)
const packageDir = (name) => path.join(here, 'node_modules', name);
const versionOf = (name) => JSON.parse(fs.readFileSync(path.join(packageDir(name), 'package.json'), 'utf8')).version;
if (versionOf('p2p-media-loader-core') !== versionOf('p2p-media-loader-hlsjs')) {
  throw new Error('p2p-media-loader-core and p2p-media-loader-hlsjs must have the same version');
}
let notice = fs.readFileSync(path.join(here, 'src/third-party-licenses.txt'), 'utf8');
for (const [placeholder, name] of [
  ['%HLS_VERSION%', 'hls.js'],
  ['%P2PML_VERSION%', 'p2p-media-loader-core'],
  ['%NOBLE_VERSION%', '@noble/hashes'],
  ['%TWEMOJI_VERSION%', '@discordapp/twemoji'],
]) {
  notice = notice.replace(placeholder, versionOf(name));
}
fs.writeFileSync(
  path.join(outDir, 'third-party-licenses.txt'),
  notice +
    fs.readFileSync(path.join(packageDir('hls.js'), 'LICENSE'), 'utf8') +
    '\n\np2p-media-loader LICENSE file, verbatim:\n-----------------------------------------\n\n' +
    fs.readFileSync(path.join(packageDir('p2p-media-loader-core'), 'LICENSE'), 'utf8'),
);

for (const file of fs.readdirSync(outDir, { recursive: true }).sort()) {
  const abs = path.join(outDir, file);
  if (fs.statSync(abs).isFile()) console.log(`static/web/${file.split(path.sep).join('/')}  ${fs.statSync(abs).size} B`);
}
