// The bundler and host matrix (issue #14): the installed tarball (target/npm/consumer), built by
// each bundler from scripts/npm (esbuild, Rollup, `bun build`, webpack 5, Vite) and run in the
// three browser engines of tests/browser/engines.mjs (Chromium, Firefox ESR, WebKitGTK: every
// page in each, the same outcome required of each; the file:// rows, Electron's renderer, in
// Chromium alone) or in node, each against the emulator: one check of a fresh key (must be
// licensed, online, that key) and one validate of a key the emulator does not know (must reject
// with `not_found`).
// The rows that must fail (the split entry where the .wasm is not emitted, a CSP without
// 'wasm-unsafe-eval', a file:// page fetching the .wasm) must fail with a `load_error` whose
// detail names the cause and the fix. The table is written to target/npm/bundler-matrix.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { ENGINES, launchEngine } from '../browser/engines.mjs';
import { newKey as newEmulatorKey, serve as serveFolder } from '../browser/support.mjs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const { POLAR_EMULATOR_URL: EMULATOR, CONSUMER, TOOLS, MATRIX_TABLE } = process.env;
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
if (!EMULATOR || !CONSUMER || !TOOLS) throw new Error('run scripts/test-wasm.sh');

const require = createRequire(join(TOOLS, '..', 'package.json'));
const BIN = join(TOOLS, '.bin');
const WORK = join(CONSUMER, 'matrix');

/** The Content-Security-Policy of each served folder that has one. */
const CSP = {
  'csp-wasm': "script-src 'self' 'wasm-unsafe-eval'",
  'csp-strict': "script-src 'self'",
  'csp-connect': "script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'",
};

/** CONSUMER on 127.0.0.1 (another origin than the emulator), with CSP[folder] headers. */
const serve = (root) =>
  serveFolder(root, (path) => {
    const csp = CSP[path.split('/')[2]];
    return csp ? { 'content-security-policy': csp } : {};
  });

const newKey = () => newEmulatorKey(EMULATOR, 'MX', { limit_activations: 3 });

/**
 * The app every row runs: `import` of `spec` (or `require(spec).load()` for `cjs`), a check of
 * `key` and a validate of an unknown key; `sink` reports the outcome: `page` (on
 * document.body.dataset.result), `worker` (postMessage) or `node` (stdout).
 */
function app(spec, key, sink, { cjs = false, trial = false } = {}) {
  const load = cjs ? `require(${JSON.stringify(spec)}).load()` : `import(${JSON.stringify(spec)})`;
  const report = {
    page: 'document.body.dataset.result = JSON.stringify(out);',
    worker: 'postMessage(out);',
    node: 'console.log(JSON.stringify(out));',
  }[sink];
  const head = cjs ? '' : `import * as pkg from ${JSON.stringify(spec)};\n`;
  const get = cjs ? `await ${load}` : 'pkg';
  return `${head}
async function main() {
  const out = {};
  let LicenseError = Error;
  try {
    const api = ${get};
    LicenseError = api.LicenseError;
    const client = new api.LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(EMULATOR)} });
    const verdict = await client.check(${JSON.stringify(key)});
    out.check = verdict.source + ' ' + (verdict.license.key === ${JSON.stringify(key)});
    try {
      await client.validate('NO-SUCH-KEY-${key}');
      out.unknown = 'resolved';
    } catch (e) {
      out.unknown = e instanceof LicenseError ? e.code : 'not a LicenseError: ' + e;
    }${trial ? `
    // The local trial's add-on (issue #54), fetched from beside the bundle by a no-key check.
    const t = new api.LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(EMULATOR)}, trial: 14, storage: 'memory' });
    try {
      await t.check();
      out.trial = 'resolved';
    } catch (e) {
      out.trial = e.trial?.local ? e.trial.state + ' ' + e.trial.daysLeft : 'no trial: ' + e.code + ' ' + e.detail;
    }` : ''}
  } catch (e) {
    out.error = e instanceof LicenseError ? { code: e.code, detail: e.detail } : { notLicenseError: String(e) };
  }
  ${report}
}
main();
`;
}

const OK = { check: 'online true', unknown: 'not_found' };
const rows = [];
/** The launched engines, by name. */
const browsers = {};
let site;

/** The engines' names as the table shows them. */
const SHOWN = { chromium: 'Chromium', firefox: 'Firefox', webkit: 'WebKit' };

before(async () => {
  await rm(WORK, { recursive: true, force: true });
  await mkdir(WORK, { recursive: true });
  site = await serve(CONSUMER);
  for (const engine of ENGINES) browsers[engine] = await launchEngine(engine, TOOLS);
});

after(async () => {
  await Promise.all(Object.values(browsers).map((b) => b.close()));
  site?.server.close();
  const lines = [
    '| bundler / host | entry | runs in | expected | result |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | \`${r.entry}\` | ${r.host} | ${r.expected} | ${r.result} |`),
  ];
  const table = `${lines.join('\n')}\n`;
  if (MATRIX_TABLE) {
    await mkdir(dirname(MATRIX_TABLE), { recursive: true });
    await writeFile(MATRIX_TABLE, table);
  }
});

/** Opens `url` in a fresh page of `engine` and waits for the app's result. */
async function inBrowser(engine, url) {
  const browser = browsers[engine];
  let page;
  try {
    page = await browser.open(url);
    await page.waitFor(() => document.body?.dataset.result);
    return JSON.parse(await page.evaluate(() => document.body.dataset.result));
  } catch (e) {
    throw new Error(`${browser.version}: ${url}: ${e.message}\n${page?.problems.join('\n') ?? ''}`);
  } finally {
    await page?.close();
  }
}

/** A folder under WORK with `files` written in it; returns its path. */
async function folder(name, files) {
  const dir = join(WORK, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
  return dir;
}

const page = (script, { module = true } = {}) =>
  `<!doctype html>\n<meta charset="utf-8">\n<title>matrix</title>\n<body>\n<script ${module ? 'type="module" ' : ''}src="${script}"></script>\n`;

/**
 * Runs a row: `build()` returns what to open (a URL) or run (a node script path); the outcome
 * must be `OK`, or (`fails`) an error of `code` (default `load_error`) whose detail matches `fails`.
 * A URL is opened in every engine (`only`: in those alone), each held to the same outcome;
 * `host` says what opens it (`page`, `worker`, `file://`).
 */
async function row({ name, entry, host = 'page', fails, code = 'load_error', only, ok = OK }, build) {
  const start = performance.now();
  const engines = ENGINES.filter((e) => !only || only.includes(e));
  const r = { name, entry, host, expected: fails ? `\`${code}\`, the fix named` : 'licensed; `not_found`', result: 'FAILED' };
  rows.push(r);
  const target = await build();
  const check = (out, where) => {
    if (fails) {
      assert.equal(out.error?.code, code, `${where}: ${JSON.stringify(out)}`);
      assert.match(out.error.detail, fails, where);
    } else {
      assert.deepEqual(out, ok, where);
    }
  };
  if (target.startsWith('node:')) {
    check(JSON.parse((await run(process.execPath, [target.slice(5)], { cwd: tmpdir(), timeout: 60_000 })).stdout), 'node');
  } else {
    assert.ok(engines.length > 0, `no engine of ${ENGINES} runs this row`);
    r.host = `${engines.map((e) => SHOWN[e]).join(', ')}${host === 'page' ? '' : ` (${host})`}`;
    for (const engine of engines) check(await inBrowser(engine, target), browsers[engine].version);
  }
  r.result = `${fails ? code : 'ok'} (${((performance.now() - start) / 1000).toFixed(1)} s)`;
}

/** esbuild from scripts/npm, run in `dir`. */
const esbuild = (dir, ...args) => run(join(BIN, 'esbuild'), [...args, '--bundle', '--log-level=error'], { cwd: dir });

test('esbuild (browser ESM): polar-license/inline in every engine', async () => {
  await row({ name: 'esbuild', entry: 'polar-license/inline' }, async () => {
    const key = await newKey();
    const dir = await folder('esbuild', { 'app.js': app('polar-license/inline', key, 'page'), 'index.html': page('./out.js') });
    await esbuild(dir, 'app.js', '--format=esm', '--platform=browser', '--minify', '--outfile=out.js');
    return `${site.url}/matrix/esbuild/index.html`;
  });
});

test('esbuild (browser ESM): the split entry, .wasm not emitted: load_error naming the inline entry', async () => {
  await row({ name: 'esbuild', entry: 'polar-license', fails: /failed to fetch Wasm: 404.*not beside the JS.*import from 'polar-license\/inline'/ }, async () => {
    const key = await newKey();
    const dir = await folder('esbuild-split', { 'app.js': app('polar-license', key, 'page'), 'index.html': page('./out.js') });
    await esbuild(dir, 'app.js', '--format=esm', '--platform=browser', '--outfile=out.js');
    return `${site.url}/matrix/esbuild-split/index.html`;
  });
});

test('Rollup (node-resolve, browser): polar-license/inline in every engine', async () => {
  await row({ name: 'Rollup 4', entry: 'polar-license/inline' }, async () => {
    const key = await newKey();
    const dir = await folder('rollup', { 'app.js': app('polar-license/inline', key, 'page'), 'index.html': page('./out.js') });
    const { rollup } = require('rollup');
    const { nodeResolve } = require('@rollup/plugin-node-resolve');
    const bundle = await rollup({ input: join(dir, 'app.js'), plugins: [nodeResolve({ browser: true })], logLevel: 'silent' });
    await bundle.write({ file: join(dir, 'out.js'), format: 'es' });
    await bundle.close();
    return `${site.url}/matrix/rollup/index.html`;
  });
});

test('bun build (--target browser): polar-license/inline in every engine', async () => {
  await row({ name: 'bun build', entry: 'polar-license/inline' }, async () => {
    const key = await newKey();
    const dir = await folder('bun', { 'app.js': app('polar-license/inline', key, 'page'), 'index.html': page('./out/app.js') });
    await run(join(BIN, 'bun'), ['build', './app.js', '--target=browser', '--outdir=out'], { cwd: dir, timeout: 60_000 });
    return `${site.url}/matrix/bun/index.html`;
  });
});

test('webpack 5 (production): the split entry, the .wasm files emitted as assets (the trial add-on fetched by a no-key check), in every engine', async () => {
  await row({ name: 'webpack 5', entry: 'polar-license', ok: { ...OK, trial: 'active 14' } }, async () => {
    const key = await newKey();
    const dir = await folder('webpack', { 'app.js': app('polar-license', key, 'page', { trial: true }), 'index.html': page('./dist/main.js', { module: false }) });
    const webpack = require('webpack');
    const stats = await new Promise((ok, fail) =>
      webpack({ mode: 'production', context: dir, entry: './app.js', output: { path: join(dir, 'dist'), publicPath: 'auto' }, target: 'web', performance: { hints: false } }).run((e, s) => (e ? fail(e) : ok(s))),
    );
    assert.ok(!stats.hasErrors(), stats.toString('errors-only'));
    const assets = Object.keys(stats.compilation.assets);
    // The engine's .wasm, and two add-ons (each a .wasm and its glue) emitted beside the bundle:
    // signed mode's (issue #38), fetched only by a client with relay keys whose host has no
    // Ed25519, and the local trial's (issue #54), fetched only by a no-key check with `trial`;
    // and why a key stopped in the core's words (polar_license_stopped.js, issue #68), fetched
    // only for a denial that says why.
    assert.equal(assets.filter((a) => a.endsWith('.wasm')).length, 3, `webpack emitted the three .wasm files: ${assets}`);
    assert.equal(assets.filter((a) => a.endsWith('.js') && a !== 'main.js').length, 3, `webpack emitted the add-ons' glue and the stopped words: ${assets}`);
    return `${site.url}/matrix/webpack/index.html`;
  });
});

test('webpack 5 (production): polar-license/inline in every engine', async () => {
  await row({ name: 'webpack 5', entry: 'polar-license/inline' }, async () => {
    const key = await newKey();
    const dir = await folder('webpack-inline', { 'app.js': app('polar-license/inline', key, 'page'), 'index.html': page('./dist/main.js', { module: false }) });
    const webpack = require('webpack');
    const stats = await new Promise((ok, fail) =>
      webpack({ mode: 'production', context: dir, entry: './app.js', output: { path: join(dir, 'dist') }, target: 'web', performance: { hints: false } }).run((e, s) => (e ? fail(e) : ok(s))),
    );
    assert.ok(!stats.hasErrors(), stats.toString('errors-only'));
    return `${site.url}/matrix/webpack-inline/index.html`;
  });
});

test('Vite build: polar-license/inline in every engine', async () => {
  await row({ name: 'Vite 8 build', entry: 'polar-license/inline' }, async () => {
    const key = await newKey();
    const dir = await folder('vite', { 'app.js': app('polar-license/inline', key, 'page'), 'index.html': page('./app.js') });
    await run(join(BIN, 'vite'), ['build', dir, '--outDir', join(dir, 'dist'), '--base', './', '--logLevel', 'warn'], { cwd: dir, timeout: 120_000 });
    return `${site.url}/matrix/vite/dist/index.html`;
  });
});

/**
 * A Vite dev server (the JS API of the pinned Vite) on a folder of the consumer project; the
 * row opens its page. `config` is what the package README tells the app to add.
 */
async function viteDev(name, spec, config) {
  const key = await newKey();
  const dir = await folder(name, { 'app.js': app(spec, key, 'page'), 'index.html': page('./app.js') });
  const { createServer } = await import(pathToFileURL(require.resolve('vite')).href);
  const server = await createServer({
    root: dir,
    configFile: false,
    logLevel: 'silent',
    server: { host: '127.0.0.1', port: 0, strictPort: false },
    ...config,
  });
  await server.listen();
  servers.push(server);
  return `${server.resolvedUrls.local[0]}index.html`;
}
const servers = [];
after(() => Promise.all(servers.map((s) => s.close())));

test("Vite dev server: the split entry with the README's optimizeDeps exclude, the inline entry as it is", async () => {
  await row({ name: "Vite 8 dev server (`optimizeDeps: { exclude: ['polar-license'] }`)", entry: 'polar-license' }, () =>
    viteDev('vite-dev', 'polar-license', { optimizeDeps: { exclude: ['polar-license'] } }),
  );
  await row({ name: 'Vite 8 dev server, no configuration', entry: 'polar-license/inline' }, () =>
    viteDev('vite-dev-inline', 'polar-license/inline', {}),
  );
});

/** An Electron-style main process: one esbuild file for node, moved away from node_modules. */
async function electronMain(name, spec, format) {
  const key = await newKey();
  const cjs = format === 'cjs';
  const dir = await folder(name, { [cjs ? 'main.cjs' : 'main.mjs']: app(spec, key, 'node', { cjs }) });
  const out = join(await mkdtemp(join(tmpdir(), `polar-license-${name}-`)), cjs ? 'main.cjs' : 'main.mjs');
  await esbuild(dir, cjs ? 'main.cjs' : 'main.mjs', '--platform=node', `--format=${format}`, `--outfile=${out}`);
  return `node:${out}`;
}

test('Electron-style main, esbuild ESM bundle run in node: polar-license/inline', async () => {
  await row({ name: 'esbuild → Electron main (ESM)', entry: 'polar-license/inline', host: 'node (bundle alone)' }, () =>
    electronMain('main-esm', 'polar-license/inline', 'esm'),
  );
});

test('Electron-style main, esbuild CommonJS bundle run in node: require(polar-license/inline).load()', async () => {
  await row({ name: 'esbuild → Electron main (CJS)', entry: 'polar-license/inline', host: 'node (bundle alone)' }, () =>
    electronMain('main-cjs', 'polar-license/inline', 'cjs'),
  );
});

test('Electron-style main, esbuild ESM bundle of the split entry: load_error (ENOENT) naming the inline entry', async () => {
  await row({ name: 'esbuild → Electron main (ESM)', entry: 'polar-license', host: 'node (bundle alone)', fails: /ENOENT.*not beside the JS.*import from 'polar-license\/inline'/ }, () =>
    electronMain('main-esm-split', 'polar-license', 'esm'),
  );
});

test('a file:// page (the Electron renderer case), no flags: polar-license/inline bundled as a classic script', async () => {
  await row({ name: 'file:// page (Electron renderer)', entry: 'polar-license/inline', host: 'file://', only: ['chromium'] }, async () => {
    const key = await newKey();
    const dir = await folder('file', { 'app.js': app('polar-license/inline', key, 'page'), 'index.html': page('./out.js', { module: false }) });
    await esbuild(dir, 'app.js', '--format=iife', '--platform=browser', '--outfile=out.js');
    return pathToFileURL(join(dir, 'index.html')).href;
  });
});

test('a file:// page fetching the split entry\'s .wasm: load_error naming file:// and the inline entry', async () => {
  await row({ name: 'file:// page (Electron renderer)', entry: 'polar-license', host: 'file://', only: ['chromium'], fails: /Failed to fetch.*file:\/\/ page.*import from 'polar-license\/inline'/ }, async () => {
    const key = await newKey();
    const dir = await folder('file-split', { 'app.js': app('polar-license', key, 'page'), 'index.html': page('./out.js', { module: false }) });
    // The .wasm copied beside the bundle, where the split entry looks for it: only the fetch fails.
    await cp(join(CONSUMER, 'node_modules', 'polar-license', 'polar_license_bg.wasm'), join(dir, 'polar_license_bg.wasm'));
    await esbuild(dir, 'app.js', '--format=iife', '--platform=browser', '--define:import.meta.url=document.baseURI', '--outfile=out.js');
    return pathToFileURL(join(dir, 'index.html')).href;
  });
});

test("a page under CSP script-src 'self' 'wasm-unsafe-eval': both entries", async () => {
  await row({ name: "CSP script-src 'self' 'wasm-unsafe-eval'", entry: 'polar-license/inline' }, async () => {
    const key = await newKey();
    const dir = await folder('csp-wasm', { 'app.js': app('polar-license/inline', key, 'page'), 'index.html': page('./out.js') });
    await esbuild(dir, 'app.js', '--format=esm', '--platform=browser', '--outfile=out.js');
    return `${site.url}/matrix/csp-wasm/index.html`;
  });
  await row({ name: "CSP script-src 'self' 'wasm-unsafe-eval'", entry: 'polar-license' }, async () => {
    const key = await newKey();
    await folder('csp-wasm', { 'app.js': app('../../node_modules/polar-license/browser.js', key, 'page'), 'index.html': page('./app.js') });
    return `${site.url}/matrix/csp-wasm/index.html`;
  });
});

test("a page under CSP script-src 'self' (no 'wasm-unsafe-eval'): load_error naming the CSP fix", async () => {
  await row({ name: "CSP script-src 'self'", entry: 'polar-license/inline', fails: /Content Security Policy.*add 'wasm-unsafe-eval' to script-src/ }, async () => {
    const key = await newKey();
    const dir = await folder('csp-strict', { 'app.js': app('polar-license/inline', key, 'page'), 'index.html': page('./out.js') });
    await esbuild(dir, 'app.js', '--format=esm', '--platform=browser', '--outfile=out.js');
    return `${site.url}/matrix/csp-strict/index.html`;
  });
});

test("a page whose CSP connect-src leaves Polar out: offline, the detail naming the CSP and the origin to add", async () => {
  // Blocked by the page's own policy, the fetch fails as an unreachable server does: still
  // offline (no verdict, the grace cache would answer), but the detail says what to fix.
  const origin = new URL(EMULATOR).origin.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const fails = new RegExp(`Content-Security-Policy blocks requests to ${origin} \\(connect-src\\): add ${origin} to connect-src`);
  await row({ name: "CSP connect-src 'self' (Polar left out)", entry: 'polar-license/inline', code: 'offline', fails }, async () => {
    const key = await newKey();
    const dir = await folder('csp-connect', { 'app.js': app('polar-license/inline', key, 'page'), 'index.html': page('./out.js') });
    await esbuild(dir, 'app.js', '--format=esm', '--platform=browser', '--outfile=out.js');
    return `${site.url}/matrix/csp-connect/index.html`;
  });
});

test('a module worker: the split entry unbundled, and polar-license/inline bundled', async () => {
  const starter = `const w = new Worker('./worker.js', { type: 'module' });
w.onmessage = (e) => { document.body.dataset.result = JSON.stringify(e.data); };
w.onerror = (e) => { document.body.dataset.result = JSON.stringify({ error: { notLicenseError: String(e.message) } }); };
`;
  await row({ name: 'module worker', entry: 'polar-license', host: 'worker' }, async () => {
    const key = await newKey();
    await folder('worker', {
      'worker.js': app('../../node_modules/polar-license/browser.js', key, 'worker'),
      'start.js': starter,
      'index.html': page('./start.js'),
    });
    return `${site.url}/matrix/worker/index.html`;
  });
  await row({ name: 'module worker (esbuild)', entry: 'polar-license/inline', host: 'worker' }, async () => {
    const key = await newKey();
    const dir = await folder('worker-inline', { 'app.js': app('polar-license/inline', key, 'worker'), 'start.js': starter, 'index.html': page('./start.js') });
    await esbuild(dir, 'app.js', '--format=esm', '--platform=browser', '--outfile=worker.js');
    return `${site.url}/matrix/worker-inline/index.html`;
  });
});
