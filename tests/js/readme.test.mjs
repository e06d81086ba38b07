// Every runnable example of the package README, one test each, run as its own node process in
// the throwaway consumer project (so `import 'polar-license'` goes through the tarball's exports
// map). An example that starts its own local Polar (`polar-license/emulator`) runs as pasted;
// in the others `baseUrl` of the emulator is added to `new LicenseClient({` and the README's
// demo key is replaced by a fresh key. The TypeScript example is compiled by
// scripts/test-wasm.sh (npm-types) and the HTML one runs in tests/browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { readmeBlocks } from './readme-blocks.mjs';
import { CONSUMER, EMULATOR, PACKAGE_DIR, README_KEY, newKey } from './emulator.mjs';

const run = promisify(execFile);
const blocks = readmeBlocks(join(PACKAGE_DIR, 'README.md'));

/** An example that starts its own local Polar (`polar-license/emulator`) runs as pasted. */
const LOCAL = /(from |require\()'polar-license\/emulator'/;
const asPasted = (name) => LOCAL.test(blocks.find((b) => b.name === name)?.code ?? '');

async function runExample(name, ext = 'mjs', keyFields = {}) {
  const block = blocks.find((b) => b.name === name);
  assert.ok(block, `README has no example ${name}`);
  const local = asPasted(name);
  const key = local ? README_KEY : await newKey(keyFields);
  const code = local
    ? block.code
    : block.code
        .replaceAll('new LicenseClient({', `new LicenseClient({ baseUrl: ${JSON.stringify(EMULATOR)},`)
        .replaceAll(README_KEY, key);
  const file = join(CONSUMER, `readme-${name}.${ext}`);
  await writeFile(file, code);
  const started = Date.now();
  const { stdout } = await run(process.execPath, [file], { cwd: CONSUMER, timeout: 30_000 });
  return { lines: stdout.trim().split('\n'), key, seconds: (Date.now() - started) / 1000 };
}

test('the README has every example the tests expect', () => {
  assert.deepEqual(
    blocks.map((b) => `${b.name}:${b.lang}`),
    [
      'quick-start:js',
      'activation:js',
      'errors:js',
      'features:js',
      'offline:js',
      'signed-mode:js',
      'relay:js',
      'electron-storage:js',
      'inline:js',
      'remember:js',
      'typescript:ts',
      'commonjs:cjs',
      'script-module:html',
    ],
  );
});

test('the examples that talk to Polar in node start their own local Polar and run as pasted', () => {
  assert.deepEqual(
    blocks.filter((b) => asPasted(b.name)).map((b) => b.name),
    ['quick-start', 'activation', 'errors', 'features', 'offline', 'signed-mode', 'relay', 'inline', 'remember', 'commonjs'],
  );
  for (const b of blocks.filter((b) => asPasted(b.name))) {
    assert.match(b.code, /baseUrl: polar\.url, \/\/ try it locally/, b.name);
    assert.match(b.code, /await polar\.close\(\); \/\/ try it locally/, b.name);
  }
});

test('example: quick-start', async () => {
  const { lines, seconds } = await runExample('quick-start');
  assert.match(lines[0], /^licensed \(online\) \*\*\*\*-[0-9A-F]{6}, status granted$/);
  // The fetch timeout timer is cleared: the process exits at once, not after 10 s.
  assert.ok(seconds < 5, `took ${seconds} s`);
});

// The examples whose printed lines are all their test checks: the name, the lines, and where
// they differ from runExample's defaults, the file's extension and the fresh key's fields.
const PRINTS = [
  [
    'activation',
    [
      'activated Ada’s laptop',
      // An activation is a verdict: the check right after it answers from the cache.
      'checked cache, same activation: true',
      'deactivated',
    ],
  ],
  [
    'remember',
    ['first launch: activated', 'second launch: licensed (cache)', 'remembered after deactivate: null'],
    { keyFields: { limit_activations: 1 } },
  ],
  [
    'errors',
    ['inactive: renew your subscription', 'not_found: check the key you typed', 'invalid_input is error: key: must not be empty'],
  ],
  [
    // The emulator's DEMO-USAGE key: the demo benefit (the example's PRO), 0 of 10 uses.
    'features',
    [
      'export_pdf: yes (granted)',
      'team_sync: no (not_granted_by_benefit)',
      'ai_credits: yes (granted, 10 left)',
      'revoked key, export_pdf: false (license_not_valid: inactive)',
    ],
  ],
  ['offline', ['cache present, 14 days of grace', 'licensed from the cache after offline']],
  [
    'signed-mode',
    [
      'protocol_error: signed mode: the grant came without a lease that verifies (missing)',
      'lease: null',
      'invalid_input (relay_keys): relayKeys: each relay key is KID=k4.public.… (no \'=\' found)',
    ],
  ],
  [
    'relay',
    [
      "clients use relayKeys: ['relay-2026=k4.public.ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ']",
      'activated with a lease from relay-2026, good offline for 7 days',
    ],
  ],
  ['commonjs', ['valid, 1 validations so far'], { ext: 'cjs' }],
  ['inline', ['licensed (online), no .wasm file needed']],
];

for (const [name, expected, { ext = 'mjs', keyFields } = {}] of PRINTS) {
  test(`example: ${name}`, async () => {
    const { lines } = await runExample(name, ext, keyFields);
    assert.deepEqual(lines, expected);
  });
}

test('example: electron-storage', async () => {
  const dir = join(tmpdir(), 'my-app-license');
  await rm(dir, { recursive: true, force: true });
  const { lines } = await runExample('electron-storage');
  assert.match(lines[0], /^licensed \(online\), cache in .*license-cache\.json$/);
  const stored = JSON.parse(await readFile(join(dir, 'license-cache.json'), 'utf8'));
  const names = Object.keys(stored).sort();
  assert.equal(names.length, 3);
  assert.equal(names[0], 'polar-license.install-secret');
  assert.match(stored[names[0]], /^[0-9a-f]{64}$/);
  assert.match(names[1], /^polar-license\.v2-[0-9a-f]{32}$/);
  assert.match(stored[names[1]], /^polar-license-cache v2\n\{.*\}\n[0-9a-f]{64}\n$/);
  assert.equal(names[2], `${names[1]}-seq`);
  assert.match(stored[names[2]], /^polar-license-ledger v1\n1\n[0-9a-f]{64}\n$/);
  await rm(dir, { recursive: true, force: true });
});
