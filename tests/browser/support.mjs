// What the browser suites (tests/browser, tests/bundlers) share besides the engines
// (./engines.mjs): a static server for the consumer project on another origin than the
// emulator, a fresh folder of pages in it, fresh emulator keys, and a page's status line.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { extname, join, normalize } from 'node:path';
import { randomBytes } from 'node:crypto';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
};

/**
 * Serves `root` on 127.0.0.1 (a folder's `index.html` for its path); `headers(path)` adds
 * response headers (a CSP).
 */
export async function serve(root, headers = () => ({})) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    try {
      const body = await readFile(join(root, path.endsWith('/') ? `${path}index.html` : path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream', ...headers(path) });
      res.end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

/** An HTML page that runs the module at `src` (relative to the page). */
export const modulePage = (src) => `<!doctype html>\n<meta charset="utf-8">\n<body>\n<script type="module" src="${src}"></script>\n`;

/** The folder `name` of `root` emptied and given `files` (file name -> text); its path. */
export async function freshFolder(root, name, files) {
  const dir = join(root, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
  return dir;
}

/** A fresh key on the emulator at `emulator`, named `<prefix>-<24 hex>`, with these seed fields. */
export async function newKey(emulator, prefix, fields = {}) {
  const key = `${prefix}-${randomBytes(12).toString('hex').toUpperCase()}`;
  const resp = await fetch(`${emulator}/__emulator/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key, ...fields }),
  });
  assert.equal(resp.status, 201);
  return key;
}

/**
 * Waits until the page's `#status` text matches `pattern` (a RegExp's source) and returns the
 * text; `page` is one of tests/browser/engines.mjs's.
 */
export async function statusMatching(page, pattern) {
  await page.waitFor((re) => new RegExp(re).test(document.querySelector('#status')?.textContent ?? ''), pattern);
  return page.evaluate(() => document.querySelector('#status').textContent);
}

/**
 * The example app's page around `<polar-license-gate>` (the gate suites' pages: the guides'
 * screenshots show it): its head, `gate` (the element's tag with its attributes), axe-core,
 * then `script` (a module).
 */
export const gatePage = (title, gate, script) => `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Example app: ${title}</title>
<style>
  body { margin: 0; font: 16px/1.4 system-ui, sans-serif; background: #f4f5f8; }
  main { padding: 16px; }
  h1 { font-size: 1rem; margin: 0 0 12px; }
</style>
<main>
  <h1>Example app</h1>
  ${gate}
</main>
<script src="./axe.min.js"></script>
<script type="module">${script}</script>
`;

/** axe-core's violations in the page (its shadow trees included), one line each. */
export function axeViolations(page) {
  return page.evaluate(async () => {
    const { violations } = await window.axe.run(document, { resultTypes: ['violations'] });
    return violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
}

/** A screenshot of the page's main (its heading and the gate) at `path`, as wide as the gate and its margin: the guides' pictures. */
export async function gateShot(page, path) {
  const box = await page.evaluate(() => {
    const gate = document.querySelector('polar-license-gate').getBoundingClientRect();
    const main = document.querySelector('main').getBoundingClientRect();
    return { x: 0, y: 0, width: Math.ceil(gate.right + gate.left), height: Math.ceil(main.bottom) };
  });
  await page.screenshot(path, { clip: box });
}

/** `page` written into the consumer project as `file`, with the axe-core copy its pages load (`tools`: scripts/npm/node_modules). */
export async function writeGatePage(consumer, tools, file, page) {
  const require = createRequire(join(tools, '..', 'package.json'));
  await copyFile(require.resolve('axe-core/axe.min.js'), join(consumer, 'axe.min.js'));
  await writeFile(join(consumer, file), page);
}
