// Startup of the npm package: the time from `import` to the first cached `check` answer, in
// node (a fresh process per run) and in each browser engine of tests/browser/engines.mjs
// (Chromium, Firefox ESR, WebKitGTK; a fresh page load per run), each entry.
//
//   bash scripts/build-npm.sh && node scripts/npm/startup.mjs [runs]    (default 15 runs)
//   PKG=before/pkg,target/npm/pkg node scripts/npm/startup.mjs           (builds side by side)
//   NODE_FLAGS=--no-wasm-lazy-compilation node scripts/npm/startup.mjs   (flags for the timed node)
//   EVAL=1 node scripts/npm/startup.mjs        (the timed script given with -e, as before 2026-11-25)
//   POLAR_BROWSERS=chromium node scripts/npm/startup.mjs   (the engines timed; default all three)
//
// With several package directories (PKG, comma-separated) their runs are interleaved, one of
// each in turn, so that the load of a shared machine falls on all of them alike.
//
// Needs target/npm/pkg (scripts/build-npm.sh), target/debug/polar-license (cargo build
// -p polar-license-cli: the emulator the first check asks, once, to fill the cache) and
// scripts/npm/node_modules (the browsers' drivers; the browsers as scripts/setup-wasm.sh
// installs them). Prints a markdown
// table of medians (and min-max), each row with issue #26's target where it has one; the node
// rows also time the later cached checks of the same client (the median of LATER=50 checks in
// each process, then the median over the runs). A benchmark, not a test: nothing here fails on
// a number.
import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { ENGINES, launchEngine } from '../../tests/browser/engines.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PKGS = (process.env.PKG ?? join(ROOT, 'target', 'npm', 'pkg')).split(',');
const CLI = join(process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target'), 'debug', 'polar-license');
const RUNS = Number(process.argv[2] ?? 15);
// Flags for the node processes timed (NODE_FLAGS='--no-wasm-lazy-compilation': V8 compiles the
// whole wasm in init() instead of each function on its first call).
const NODE_FLAGS = (process.env.NODE_FLAGS ?? '').split(' ').filter(Boolean);
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
const KEY = 'DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A';
const run = promisify(execFile);

/** The emulator on a free port: `{ url, stop }`. */
async function emulator() {
  const child = spawn(CLI, ['emulator', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((ok, fail) => {
    let out = '';
    child.on('error', fail);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^listening on (\S+)\r?\n/m);
      if (m) ok(m[1]);
    });
  });
  return { url, stop: () => child.kill() };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ms = (x) => (x < 1 ? x.toFixed(3) : x.toFixed(1));
const cell = (xs) => `${ms(median(xs))} (${ms(Math.min(...xs))}–${ms(Math.max(...xs))})`;
/** A row: what, its target (issue #26; `''` for none), a cell per package, and met/missed by the last. */
const row = (what, target, runs) => {
  const last = median(runs[runs.length - 1]);
  const result = target === '' ? '' : last <= target ? 'met' : `missed (${(last / target).toFixed(1)}× the target)`;
  return `| ${what} | ${target === '' ? '' : `≤ ${target}`} | ${runs.map(cell).join(' | ')} | ${result} |`;
};

// ---- node: one process per run, the cache in a file directory the first run filled --------

const NODE_RUN = `
const t0 = performance.now();
const { LicenseClient, init } = await import(process.env.ENTRY);
const imported = performance.now();
// What a check does first anyway (wasm read, compiled and instantiated), timed apart.
await init();
const loaded = performance.now();
const client = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: process.env.API, cacheDir: process.env.DIR });
const verdict = await client.check(${JSON.stringify(KEY)});
const t1 = performance.now();
const later = [];
for (let i = 0; i < ${Number(process.env.LATER ?? 50)}; i++) {
  const a = performance.now();
  const again = await client.check(${JSON.stringify(KEY)});
  later.push(performance.now() - a);
  if (again.source !== 'cache') throw new Error('a later check answered ' + again.source);
}
later.sort((a, b) => a - b);
console.log(JSON.stringify({ ms: t1 - t0, parts: [imported - t0, loaded - imported, t1 - loaded], source: verdict.source, later: later[later.length >> 1] }));
`;

// The timed script is a file, as an app's is: a script given with `-e` pays node's module loader
// start (about 2.5 ms here) on its first import of a file, inside the time measured. Until
// 2026-11-25 (issue #38) it was given with `-e`; `EVAL=1` measures that way again.
const SCRIPT_DIR = await mkdtemp(join(tmpdir(), 'polar-startup-script-'));
const SCRIPT = join(SCRIPT_DIR, 'app.mjs');
await writeFile(SCRIPT, NODE_RUN);
process.on('exit', () => rmSync(SCRIPT_DIR, { recursive: true, force: true }));

/** node's own floor: an empty module imported the same way (import only). */
async function emptyImports() {
  const empty = join(SCRIPT_DIR, 'empty.mjs');
  const app = join(SCRIPT_DIR, 'empty-app.mjs');
  await writeFile(empty, 'export const nothing = 0;\n');
  await writeFile(
    app,
    `const t0 = performance.now(); await import(${JSON.stringify(pathToFileURL(empty).href)}); console.log(JSON.stringify({ ms: performance.now() - t0 }));\n`,
  );
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    const args = process.env.EVAL ? ['--input-type=module', '-e', await readFile(app, 'utf8')] : [app];
    times.push(JSON.parse((await run(process.execPath, [...NODE_FLAGS, ...args])).stdout).ms);
  }
  return times;
}

async function nodeRuns(entry, api) {
  const args = process.env.EVAL ? ['--input-type=module', '-e', NODE_RUN] : [SCRIPT];
  const once = async (env) => JSON.parse((await run(process.execPath, [...NODE_FLAGS, ...args], { env })).stdout);
  const setups = [];
  for (const pkg of PKGS) {
    const dir = await mkdtemp(join(tmpdir(), 'polar-startup-'));
    const env = { ...process.env, ENTRY: pathToFileURL(join(pkg, entry)).href, API: api, DIR: dir };
    const first = await once(env);
    if (first.source !== 'online') throw new Error(`node ${pkg} ${entry}: the first check answered ${first.source}`);
    setups.push({ dir, env, times: [], later: [], parts: [[], [], []] });
  }
  for (let i = 0; i < RUNS; i++) {
    for (const s of setups) {
      const r = await once(s.env);
      if (r.source !== 'cache') throw new Error(`node ${entry}: a later check answered ${r.source}`);
      s.times.push(r.ms);
      s.later.push(r.later);
      r.parts.forEach((ms, k) => s.parts[k].push(ms));
    }
  }
  for (const s of setups) await rm(s.dir, { recursive: true, force: true });
  return [setups.map((s) => s.times), setups.map((s) => s.later), [0, 1, 2].map((k) => setups.map((s) => s.parts[k]))];
}

// ---- browsers: one page load per run, the cache in the origin's localStorage ---------------

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };

function page(entry, api) {
  return `<!doctype html><meta charset="utf-8"><script type="module">
const t0 = performance.now();
const { LicenseClient } = await import('./${entry}');
const client = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(api)} });
const verdict = await client.check(${JSON.stringify(KEY)});
window.result = { ms: performance.now() - t0, source: verdict.source };
</script>`;
}

/** A static server for the package in `pkg`, its page importing `entry`. */
async function site(pkg, entry, api) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(page(entry, api));
      return;
    }
    try {
      const body = await readFile(join(pkg, path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

/** Each page of `context` loaded from `url` in turn: its `window.result`. */
async function loaded(context, url) {
  const page = await context.open(url);
  await page.waitFor(() => window.result);
  const r = await page.evaluate(() => window.result);
  await page.close();
  return r;
}

async function browserRuns(browser, entry, api) {
  const setups = [];
  for (const pkg of PKGS) {
    const { server, url } = await site(pkg, entry, api);
    const context = await browser.context();
    const first = await loaded(context, url);
    if (first.source !== 'online') throw new Error(`${browser.version} ${pkg} ${entry}: the first check answered ${first.source}`);
    setups.push({ server, url, context, times: [] });
  }
  for (let i = 0; i < RUNS; i++) {
    for (const s of setups) {
      const r = await loaded(s.context, s.url);
      if (r.source !== 'cache') throw new Error(`${browser.version} ${entry}: a later check answered ${r.source}`);
      s.times.push(r.ms);
    }
  }
  for (const s of setups) {
    await s.context.close();
    s.server.close();
  }
  return setups.map((s) => s.times);
}

/** The browser's own floor: a fresh page that imports an empty module, served the same way. */
async function browserFloor(browser) {
  const server = createServer((req, res) => {
    if (req.url === '/') {
      const html = `<!doctype html><meta charset="utf-8"><script type="module">
const t0 = performance.now();
await import('./empty.js');
window.result = { ms: performance.now() - t0 };
</script>`;
      res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    } else res.writeHead(200, { 'content-type': 'text/javascript' }).end('export const nothing = 0;\n');
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const context = await browser.context();
  const times = [];
  try {
    for (let i = 0; i <= RUNS; i++) {
      const r = await loaded(context, `http://127.0.0.1:${server.address().port}/`);
      if (i > 0) times.push(r.ms); // the first load fills the cache, as for the package
    }
  } finally {
    await context.close();
    server.close();
  }
  return times;
}

/**
 * The engines as the table shows them, and their targets (issue #38: Chromium's). Firefox and
 * WebKit give `performance.now()` in whole milliseconds (reduced timer precision).
 */
const SHOWN = { chromium: 'headless Chromium', firefox: 'headless Firefox ESR', webkit: 'MiniBrowser on Xvfb' };
const TARGET = { chromium: 40 };

const emu = await emulator();
try {
  const rows = [];
  const [nodeFirst, nodeLater, nodeParts] = await nodeRuns('node.js', emu.url);
  rows.push(row('node, `polar-license` (node entry: wasm read and compiled synchronously): import → first cached check', 10, nodeFirst));
  rows.push(row('… of which the `import` (node\'s module loader: the entry, one module since issue #38, with node:os and node:path)', '', nodeParts[0]));
  rows.push(row('… of which `init()`: the wasm read, compiled and instantiated', '', nodeParts[1]));
  rows.push(row('… of which the first check itself: the engine\'s first calls (cold wasm), the machine id and four files read, the clock note written', '', nodeParts[2]));
  rows.push(row('node, `polar-license`: a later cached check, same client (median of each process\'s later checks)', 0.1, nodeLater));
  const empty = await emptyImports();
  rows.push(row('… node\'s own floor: an empty module imported the same way', '', PKGS.map(() => empty)));
  const [inlineFirst, inlineLater] = await nodeRuns('inline-node.js', emu.url);
  rows.push(row('node, `polar-license/inline` (decoded, compiled): import → first cached check', '', inlineFirst));
  rows.push(row('node, `polar-license/inline`: a later cached check, same client', '', inlineLater));
  for (const engine of ENGINES) {
    const browser = await launchEngine(engine, join(ROOT, 'scripts', 'npm', 'node_modules'));
    const name = `${SHOWN[engine]} (${browser.version})`;
    try {
      rows.push(row(`${name}, \`polar-license\` (browser entry: the .wasm fetched, streaming compile): import → first cached check`, TARGET[engine] ?? '', await browserRuns(browser, 'browser.js', emu.url)));
      rows.push(row(`${name}, \`polar-license/inline\`: import → first cached check`, '', await browserRuns(browser, 'inline.js', emu.url)));
      const floor = await browserFloor(browser);
      rows.push(row(`… its own floor: a fresh page importing an empty module`, '', PKGS.map(() => floor)));
    } finally {
      await browser.close();
    }
  }
  console.log(`| ms: median (min–max) of ${RUNS} runs | target (issue #26) | ${PKGS.join(' | ')} | result (${PKGS[PKGS.length - 1]}) |`);
  console.log(`|---|---:|${PKGS.map(() => '---:').join('|')}|---|`);
  for (const r of rows) console.log(r);
} finally {
  emu.stop();
}
