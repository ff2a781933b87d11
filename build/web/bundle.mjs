// What build.mjs and build-panel.mjs share: finding the bundles esbuild
// made, and putting their URLs into a page.
import path from 'node:path';

// bundleUrl is the URL (from urlOf, given the output file's absolute
// path) of the one entry bundle in result whose name ends with ext.
export function bundleUrl(result, here, urlOf, ext) {
  const outputs = Object.entries(result.metafile.outputs)
    .filter(([file, meta]) => meta.entryPoint && file.endsWith(ext))
    .map(([file]) => urlOf(path.resolve(here, file)));
  if (outputs.length !== 1) throw new Error(`expected one ${ext} bundle, got ${outputs.join(', ')}`);
  return outputs[0];
}

// fillPlaceholders replaces each [placeholder, value] in html, where each
// must appear exactly once and no other %NAME% may be left; name is the
// page's source, for the errors.
export function fillPlaceholders(html, pairs, name) {
  for (const [placeholder, value] of pairs) {
    const parts = html.split(placeholder);
    if (parts.length !== 2) throw new Error(`${name}: ${placeholder} must appear exactly once`);
    html = parts.join(value);
  }
  const leftover = html.match(/%[A-Z_]+%/);
  if (leftover) throw new Error(`${name}: unknown placeholder ${leftover[0]}`);
  return html;
}
