// Issue #14 in node: the inline entry (`polar-license/inline`, the wasm inside the JS) through
// the exports map, ESM and CommonJS, against the emulator; every load failure a `load_error`
// whose detail names the cause and the fix; option mistakes as a JS developer wrote them
// (camelCase names, no serde text, units spelled out), and a constructor that never throws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CONSUMER, DEAD, EMULATOR, ORG, PACKAGE_DIR, newKey, pkg, rejection, resolvesThroughExports } from './emulator.mjs';

const run = promisify(execFile);
const { LicenseClient, LicenseError } = await pkg();

/** What `new LicenseClient(options)`'s first call rejects with. */
async function firstCall(options) {
  let c;
  assert.doesNotThrow(() => (c = new LicenseClient(options)), 'the constructor never throws');
  const e = await rejection(c.status('K-1'));
  assert.ok(e instanceof LicenseError, String(e));
  assert.equal(e.code, 'invalid_input');
  // Nothing of serde's: no positions, no Rust type names, no snake_case option names.
  assert.doesNotMatch(e.detail, /line \d+ column|untagged|MetaValue|f64|i64|organization_id|base_url|grace_period/, e.detail);
  return e;
}

test('polar-license/inline resolves through the exports map (ESM: node build, require: the CommonJS face)', async () => {
  const cjs = await resolvesThroughExports('/inline', 'inline-node.js', 'inline.cjs');
  const inline = await import(pathToFileURL(join(CONSUMER, 'node_modules', 'polar-license', 'inline-node.js')).href);
  assert.equal((await cjs.load()).LicenseClient, inline.LicenseClient);
});

test('the inline entry checks a key against the emulator with no .wasm file at all', async () => {
  // A copy of the package without polar_license_bg.wasm: the inline entry never reads it.
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-inline-'));
  try {
    await cp(PACKAGE_DIR, dir, { recursive: true });
    await rm(join(dir, 'polar_license_bg.wasm'));
    assert.ok(!(await readdir(dir)).includes('polar_license_bg.wasm'));
    let key;
    for (const entry of ['inline-node.js', 'inline.js']) {
      // A key of its own: the two entries share one module, so one memory store.
      key = await newKey();
      const inline = await import(pathToFileURL(join(dir, entry)).href);
      const c = new inline.LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory' });
      const verdict = await c.check(key);
      assert.equal(verdict.source, 'online', entry);
      assert.equal(verdict.license.key, key, entry);
      const e = await rejection(c.check('NO-SUCH-KEY'));
      assert.ok(e instanceof inline.LicenseError);
      assert.equal(e.code, 'not_found', entry);
    }
    // CommonJS: load() of the copy's inline.cjs.
    const { stdout } = await run(process.execPath, [
      '-e',
      `require(${JSON.stringify(join(dir, 'inline.cjs'))}).load().then(async ({ LicenseClient }) => {
         const c = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(EMULATOR)}, storage: 'memory' });
         const v = await c.validate(${JSON.stringify(key)});
         console.log(v.license.key);
       })`,
    ]);
    assert.equal(stdout.trim(), key);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the browser inline entry in a host without DecompressionStream: a load_error naming it and the default entry', async () => {
  const url = pathToFileURL(join(PACKAGE_DIR, 'inline.js')).href;
  const { stdout } = await run(process.execPath, [
    '--input-type=module',
    '-e',
    `delete globalThis.DecompressionStream;
     const { LicenseClient } = await import(${JSON.stringify(url)});
     const c = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(DEAD)}, storage: 'memory' });
     try { await c.check('K-1'); console.log('resolved'); } catch (e) { console.log(JSON.stringify({ code: e.code, detail: e.detail })); }`,
  ]);
  const e = JSON.parse(stdout);
  assert.equal(e.code, 'load_error', stdout);
  assert.match(e.detail, /DecompressionStream, which this host lacks.*Safari 16\.4\+.*import from 'polar-license' instead/);
});

const PERMISSIONS = Number(process.versions.node.split('.')[0]) >= 20 ? false : 'node < 20 has no permission model';

test('a wasm the host may not read is a load_error naming the permission and the inline entry', { skip: PERMISSIONS }, async () => {
  // Node's permission model (as Deno without --allow-read): every file of the package may be
  // read but the .wasm.
  const files = (await readdir(PACKAGE_DIR)).filter((f) => f !== 'polar_license_bg.wasm').map((f) => join(PACKAGE_DIR, f));
  const script = `import(${JSON.stringify(pathToFileURL(join(PACKAGE_DIR, 'node.js')).href)}).then(async (m) => {
      const e = await m.init().then(() => null, (e) => e);
      console.log(JSON.stringify({ isLicenseError: e instanceof m.LicenseError, code: e?.code, detail: e?.detail }));
    })`;
  const { stdout } = await run(process.execPath, [
    '--experimental-permission',
    ...files.map((f) => `--allow-fs-read=${f}`),
    '--no-warnings',
    '-e',
    script,
  ]);
  const e = JSON.parse(stdout);
  assert.equal(e.isLicenseError, true);
  assert.equal(e.code, 'load_error');
  assert.match(e.detail, /ERR_ACCESS_DENIED/);
  assert.match(e.detail, /may not read the package's polar_license_bg\.wasm: allow it \(deno run --allow-read, node --allow-fs-read\) or import from 'polar-license\/inline'/);
});

test('a wasm bundled away from its JS (a CommonJS bundle: no import.meta.url) is a load_error naming the fix', async () => {
  // What an esbuild --format=cjs bundle of the browser entry does: `import.meta` becomes `{}`.
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-cjs-'));
  try {
    await cp(PACKAGE_DIR, dir, { recursive: true });
    const { readFile, writeFile } = await import('node:fs/promises');
    const browser = join(dir, 'browser.js');
    await writeFile(browser, (await readFile(browser, 'utf8')).replace('import.meta.url', 'undefined'));
    const m = await import(pathToFileURL(browser).href);
    const e = await rejection(new m.LicenseClient({ organizationId: ORG, baseUrl: DEAD }).check('K-1'));
    assert.ok(e instanceof m.LicenseError);
    assert.equal(e.code, 'load_error');
    assert.match(e.detail, /Invalid URL/);
    assert.match(e.detail, /not beside the JS that loads it: a bundler .*esbuild, Rollup, bun build.*import from 'polar-license\/inline'/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the constructor never throws: a bad options object rejects the first call', async () => {
  for (const options of [undefined, null, 'org', 42, []]) {
    const e = await firstCall(options);
    assert.equal(e.field, 'options');
    assert.match(e.detail, /^options: must be an object such as \{ organizationId: '…' \}, got /);
  }
  const big = await firstCall({ organizationId: ORG, appSecret: 'x', machineId: 1n });
  assert.equal(big.field, 'options');
  assert.match(big.detail, /machineId must be a string, got a bigint/);
});

test('a missing or wrong organizationId is named as the JS option', async () => {
  const missing = await firstCall({ baseUrl: EMULATOR });
  assert.equal(missing.field, 'organization_id');
  assert.match(missing.detail, /^organizationId: required/);
  const wrong = await firstCall({ organizationId: 'nope' });
  assert.equal(wrong.field, 'organization_id');
  assert.equal(wrong.detail, 'organizationId: must be a UUID (version 4)');
  const number = await firstCall({ organizationId: 42 });
  assert.equal(number.detail, 'options: organizationId must be a string, got a number (42)');
});

test('unknown options are listed with every option there is, and a near one suggested', async () => {
  const e = await firstCall({ organizationId: ORG, storag: 'memory', clok: () => 0, Features: {}, colour: 'red' });
  assert.equal(e.field, 'options');
  assert.equal(
    e.detail,
    'options: unknown options `storag` (did you mean `storage`?), `clok` (did you mean `clock`?), ' +
      '`Features` (did you mean `features`?), `colour`; the options are organizationId, server, baseUrl, ' +
      'timeout, gracePolicy, storage, appSecret, machineId, requireActivation, features, clock, cacheDir, appId, rememberKeys, fetch, relayKeys, released, trialBenefit, trial, relay, portalUrl',
  );
  const policy = await firstCall({ organizationId: ORG, gracePolicy: { grace: 86400 } });
  assert.match(policy.detail, /unknown gracePolicy option `grace`; the gracePolicy options are revalidateAfter, gracePeriod, clockTolerance$/);
});

test('server: a name that is not production or sandbox is a server problem', async () => {
  const staging = await firstCall({ organizationId: ORG, server: 'staging' });
  assert.equal(staging.field, 'server');
  assert.equal(staging.detail, `server: must be 'production', 'sandbox' or a URL (https://…), got a string ("staging")`);
  const http = await firstCall({ organizationId: ORG, server: 'http://example.com' });
  assert.equal(http.field, 'server');
  assert.match(http.detail, /^server: plain http:\/\/ is only allowed for loopback hosts/);
  // baseUrl keeps its own name.
  const base = await firstCall({ organizationId: ORG, baseUrl: 'http://example.com' });
  assert.equal(base.field, 'base_url');
  assert.match(base.detail, /^baseUrl: /);
  // And a right one works: the emulator as `server`.
  const key = await newKey();
  const ok = await new LicenseClient({ organizationId: ORG, server: EMULATOR, storage: 'memory' }).validate(key);
  assert.equal(ok.license.key, key);
});

test('timeout is in seconds: a millisecond-looking one is refused with the unit named', async () => {
  const ms = await firstCall({ organizationId: ORG, timeout: 5000 });
  assert.equal(ms.field, 'timeout');
  assert.equal(ms.detail, 'timeout: is in seconds, at most 600: 5000 would be 83.3 minutes; if you meant 5000 milliseconds, write timeout: 5');
  const text = await firstCall({ organizationId: ORG, timeout: '5s' });
  assert.equal(text.detail, 'timeout: must be a number of seconds > 0 (e.g. timeout: 5), got a string ("5s")');
  for (const t of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.equal((await firstCall({ organizationId: ORG, timeout: t })).field, 'timeout');
  }
  // 600 s is the longest; 0.5 s is fine.
  const key = await newKey();
  for (const timeout of [600, 0.5]) {
    const v = await new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory', timeout }).validate(key);
    assert.equal(v.license.key, key);
  }
});

test('the grace policy is in seconds: millisecond-looking durations are refused with the unit named', async () => {
  const week = await firstCall({ organizationId: ORG, gracePolicy: { gracePeriod: 7 * 86400 * 1000 } });
  assert.equal(week.field, 'gracePolicy.gracePeriod');
  assert.equal(
    week.detail,
    'gracePolicy.gracePeriod: is in seconds, at most 31622400 (366 days): 604800000 would be 19.2 years; ' +
      'if you meant 604800000 milliseconds, write gracePeriod: 604800',
  );
  const hour = await firstCall({ organizationId: ORG, gracePolicy: { revalidateAfter: 3600 * 1000 } });
  // 3600000 s (an hour in milliseconds) is 41.7 days: longer than the grace period.
  assert.equal(
    hour.detail,
    'gracePolicy.revalidateAfter: must not be longer than gracePolicy.gracePeriod (604800 seconds, 7 days): 3600000 is 41.7 days; ' +
      'durations are in seconds: if you meant 3600000 milliseconds, write revalidateAfter: 3600',
  );
  const text = await firstCall({ organizationId: ORG, gracePolicy: { clockTolerance: '10m' } });
  assert.match(text.detail, /^gracePolicy\.clockTolerance: must be a number of seconds >= 0/);
  // The engine's own checks, in the JS names.
  const zero = await firstCall({ organizationId: ORG, gracePolicy: { gracePeriod: 0 } });
  assert.equal(zero.detail, 'gracePolicy.gracePeriod: must be longer than zero');
  const order = await firstCall({ organizationId: ORG, gracePolicy: { revalidateAfter: 30 * 86400 } });
  assert.equal(order.field, 'revalidate_after');
  assert.equal(
    order.detail,
    'gracePolicy.revalidateAfter: must not be longer than gracePolicy.gracePeriod (604800 seconds, 7 days): 2592000 is 30 days; ' +
      'durations are in seconds: if you meant 2592000 milliseconds, write revalidateAfter: 2592',
  );
  const tolerance = await firstCall({ organizationId: ORG, gracePolicy: { gracePeriod: 3600, clockTolerance: 7200 } });
  assert.equal(tolerance.field, 'clock_tolerance');
  assert.match(tolerance.detail, /^gracePolicy\.clockTolerance: must not be longer than gracePolicy\.gracePeriod \(3600 seconds, 60 minutes\)/);
  const notObject = await firstCall({ organizationId: ORG, gracePolicy: 86400 });
  assert.match(notObject.detail, /^options: gracePolicy must be an object/);
});

test('other option types are named: appSecret, machineId, requireActivation, clock', async () => {
  assert.match((await firstCall({ organizationId: ORG, appSecret: 5 })).detail, /^options: appSecret must be a string, got a number \(5\)$/);
  assert.match((await firstCall({ organizationId: ORG, requireActivation: 'yes' })).detail, /requireActivation must be true or false, got a string \("yes"\)/);
  assert.match((await firstCall({ organizationId: ORG, clock: 1700000000000 })).detail, /clock must be a function returning milliseconds since 1970/);
});

test("each call's options: unknown names, wrong types and metadata values in plain words", async () => {
  const c = new LicenseClient({ organizationId: ORG, baseUrl: DEAD, storage: 'memory' });
  const cases = [
    ['validate', { activationID: 'x' }, 'options: unknown validate() option `activationID` (did you mean `activationId`?); the validate() options are activationId, benefitId, customerId, incrementUsage, conditions'],
    ['validate', { incrementUsage: '1' }, 'options: incrementUsage must be a whole number, got a string ("1")'],
    ['validate', { conditions: { seats: [1] } }, 'options: conditions.seats must be a string, a finite number or a boolean, got an array'],
    ['activate', { label: 5 }, 'options: label must be a string, got a number (5)'],
    ['activate', { meta: { app: null } }, 'options: meta.app must be a string, a finite number or a boolean, got null'],
    ['activate', { meta: 'v2' }, 'options: meta must be an object of strings, numbers and booleans, got a string ("v2")'],
    ['deactivate', { id: 'x' }, 'options: unknown deactivate() option `id`; the deactivate() options are activationId'],
    ['deactivate', 'x', 'options: the options of deactivate() must be an object, got a string ("x")'],
  ];
  for (const [call, options, detail] of cases) {
    const e = await rejection(c[call]('K-1', options));
    assert.ok(e instanceof LicenseError);
    assert.deepEqual([e.code, e.field, e.detail], ['invalid_input', 'options', detail], `${call} ${JSON.stringify(options)}`);
  }
});
