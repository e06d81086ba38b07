// Browser end-to-end: the installed tarball in each browser engine (tests/browser/engines.mjs:
// Chromium, Firefox ESR, WebKitGTK), against the emulator, cross-origin (so every POST is
// preflighted):
//   1. a page built with Vite that imports 'polar-license', activates, validates, checks (from
//      the cache: an activation is a verdict) and asks the verdict for two features; its
//      localStorage then holds the install secret, the key's record and its ledger; screenshot
//      kept in target/npm/e2e-<engine>.png
//   2. the README's plain <script type="module"> example, served as it is (baseUrl added)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { eachEngine } from './engines.mjs';
import { newKey as newEmulatorKey, serve, statusMatching } from './support.mjs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const { POLAR_EMULATOR_URL: EMULATOR, CONSUMER, TOOLS, SCREENSHOT } = process.env;
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
const README_KEY = 'DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A';
const BENEFIT = '0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d';
if (!EMULATOR || !CONSUMER || !TOOLS) throw new Error('run scripts/test-wasm.sh');

const newKey = () => newEmulatorKey(EMULATOR, 'E2E', { limit_activations: 3, benefit_id: BENEFIT });

let site;

before(async () => {
  // Build the Vite app inside the consumer project, where 'polar-license' is installed.
  const app = join(CONSUMER, 'e2e');
  await rm(app, { recursive: true, force: true });
  await cp(join(HERE, 'app'), app, { recursive: true });
  await run(join(TOOLS, '.bin', 'vite'), ['build', app, '--outDir', join(app, 'dist'), '--base', './', '--logLevel', 'warn'], {
    cwd: app,
    timeout: 120_000,
  });
  site = await serve(CONSUMER);
});

after(() => site?.server.close());

eachEngine(TOOLS, (engine, browser) => {
  // The suites below are only worth their names if each engine is the one it says.
  test('the pages run in the engine named', async (t) => {
    const page = await browser.open(`${site.url}/e2e/dist/index.html`);
    const agent = await page.evaluate(() => navigator.userAgent);
    await page.close();
    t.diagnostic(`${engine}: ${browser.version}; ${agent}`);
    const expected = {
      chromium: /Chrome\/\d+/,
      firefox: /^(?!.*Chrome).*Gecko\/\d+ Firefox\/\d+/,
      webkit: /^(?!.*(Chrome|Firefox)).*AppleWebKit\/\d+.*Safari\/\d+/,
    }[engine];
    assert.match(agent, expected);
  });

  test('a Vite-built page activates, validates, checks a key and gates features', async () => {
    const key = await newKey();
    const query = new URLSearchParams({ api: EMULATOR, org: ORG, key, benefit: BENEFIT });
    const page = await browser.open(`${site.url}/e2e/dist/index.html?${query}`);
    const text = await statusMatching(page, 'licensed|error');
    assert.match(
      text,
      /^activated [0-9a-f-]{36}; validated \*\*\*\*-[0-9A-F]{6} \(granted\); check: licensed \(cache\); pro: true \(granted\), team: false \(not_granted_by_benefit\); 4 entries in localStorage$/,
      `${browser.version}: ${text}\n${page.problems.join('\n')}`,
    );
    const shot = SCREENSHOT.replace(/\.png$/, `-${engine}.png`);
    await mkdir(dirname(shot), { recursive: true });
    await page.screenshot(shot);
    const assets = await readdir(join(CONSUMER, 'e2e', 'dist', 'assets'));
    assert.ok(assets.some((f) => f.endsWith('.wasm')), `Vite emitted the wasm: ${assets}`);
    await page.close();
  });

  test("the README's <script type=\"module\"> example runs as it is", async () => {
    const readme = await readFile(join(CONSUMER, 'node_modules', 'polar-license', 'README.md'), 'utf8');
    const block = readme.match(/<!-- example: script-module -->\s*\n```html\n([\s\S]*?)\n```/);
    assert.ok(block, 'README has the script-module example');
    const key = await newKey();
    const html = block[1]
      .replaceAll('new LicenseClient({', `new LicenseClient({ baseUrl: ${JSON.stringify(EMULATOR)},`)
      .replaceAll(README_KEY, key);
    const file = `readme-script-module-${engine}.html`;
    await writeFile(join(CONSUMER, file), `<!doctype html>\n<meta charset="utf-8">\n${html}\n`);
    const page = await browser.open(`${site.url}/${file}`);
    const text = await statusMatching(page, 'licensed');
    assert.equal(text, 'licensed (online)', `${browser.version}: ${page.problems.join('\n')}`);
    await page.close();
  });
});
