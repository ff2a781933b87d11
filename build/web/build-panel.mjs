// Builds the admin panel into ../../static/panel (served by the Go binary
// at /admin/, behind the admin login).
//
//   npm ci --ignore-scripts && npm run build
//
// Output (relative to static/panel):
//   index.html                   from src/admin/index.html, placeholders replaced
//   assets/panel-[hash].js|.css  esbuild bundles of src/admin (Preact, htm and
//                                uPlot included, never a CDN)
//   third-party-licenses.txt     licences of the bundled code
//
// Like build.mjs, deterministic: the output is committed and CI rebuilds
// and diffs it.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleUrl, fillPlaceholders } from './bundle.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '../../static/panel');
const assetsDir = path.join(outDir, 'assets');
fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(assetsDir, { recursive: true });

const result = await build({
  absWorkingDir: here,
  entryPoints: ['src/admin/app.js', 'src/admin/admin.css'],
  entryNames: 'panel-[hash]',
  outdir: assetsDir,
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020', 'chrome90', 'firefox90', 'safari14', 'edge90'],
  legalComments: 'eof',
  sourcemap: false,
  metafile: true,
  logLevel: 'warning',
});

const urlOf = (file) => '/admin/' + path.relative(outDir, file).split(path.sep).join('/');
const html = fillPlaceholders(
  fs.readFileSync(path.join(here, 'src/admin/index.html'), 'utf8'),
  [
    ['%JS%', bundleUrl(result, here, urlOf, '.js')],
    ['%CSS%', bundleUrl(result, here, urlOf, '.css')],
  ],
  'src/admin/index.html',
);
fs.writeFileSync(path.join(outDir, 'index.html'), html);

const packageDir = (name) => path.join(here, 'node_modules', name);
const pkg = (name) => JSON.parse(fs.readFileSync(path.join(packageDir(name), 'package.json'), 'utf8'));
let notice = 'The admin panel bundles these, each under its licence below:\n\n';
for (const name of ['preact', 'htm', 'uplot']) {
  const p = pkg(name);
  const licence = fs.readdirSync(packageDir(name)).find((f) => /^licen[cs]e/i.test(f));
  notice += `${name} ${p.version} (${p.license})\n\n`;
  notice += (licence ? fs.readFileSync(path.join(packageDir(name), licence), 'utf8') : `${p.license}, see the package.`) + '\n\n';
}
fs.writeFileSync(path.join(outDir, 'third-party-licenses.txt'), notice);

for (const file of fs.readdirSync(outDir, { recursive: true }).sort()) {
  const abs = path.join(outDir, file);
  if (fs.statSync(abs).isFile()) console.log(`static/panel/${file.split(path.sep).join('/')}  ${fs.statSync(abs).size} B`);
}
