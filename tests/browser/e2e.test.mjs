// Browser end-to-end: the installed tarball in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium), against the emulator, cross-origin (so every POST is preflighted):
//   1. a page built with Vite that imports 'polar-license', activates, validates, checks (from
//      the cache: an activation is a verdict) and asks the verdict for two features; its
//      localStorage then holds the install secret, the key's record and its ledger; screenshot
//      kept in target/npm/e2e.png
//   2. the README's plain <script type="module"> example, served as it is (baseUrl added)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { launch, newKey as newEmulatorKey, serve } from './support.mjs';
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

const require = createRequire(join(TOOLS, '..', 'package.json'));
const { chromium } = require('playwright-core');

const newKey = () => newEmulatorKey(EMULATOR, 'E2E', { limit_activations: 3, benefit_id: BENEFIT });

let browser;
let site;
const problems = [];

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
  browser = await launch(chromium);
});

after(async () => {
  await browser?.close();
  site?.server.close();
});

async function open(path) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  await page.goto(`${site.url}${path}`);
  return page;
}

test('a Vite-built page activates, validates, checks a key and gates features', async () => {
  const key = await newKey();
  const query = new URLSearchParams({ api: EMULATOR, org: ORG, key, benefit: BENEFIT });
  const page = await open(`/e2e/dist/index.html?${query}`);
  const status = page.locator('#status');
  await status.filter({ hasText: /licensed|error/ }).waitFor({ timeout: 30_000 });
  const text = await status.textContent();
  assert.match(
    text,
    /^activated [0-9a-f-]{36}; validated \*\*\*\*-[0-9A-F]{6} \(granted\); check: licensed \(cache\); pro: true \(granted\), team: false \(not_granted_by_benefit\); 4 entries in localStorage$/,
    `${text}\n${problems.join('\n')}`,
  );
  await mkdir(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT });
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
  await writeFile(join(CONSUMER, 'readme-script-module.html'), `<!doctype html>\n<meta charset="utf-8">\n${html}\n`);
  const page = await open('/readme-script-module.html');
  const status = page.locator('#status');
  await status.filter({ hasText: /licensed/ }).waitFor({ timeout: 30_000 });
  assert.equal(await status.textContent(), 'licensed (online)', problems.join('\n'));
  await page.close();
});
