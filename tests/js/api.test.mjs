// The installed package's API beyond the README: the exports map, the shipped files, the
// LicenseError contract, the reason table against the Rust one, storage adapters, options,
// the grace clock and concurrent checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEAD, EMULATOR, ORG, PACKAGE_DIR, mapStorage, newKey, pkg, rejection, relay, resolvesThroughExports } from './emulator.mjs';

const { LicenseClient, LicenseError, REASONS, init } = await pkg();

function client(options = {}) {
  return new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory', ...options });
}

test('the exports map gives node the ESM node build and require the CJS loader', async () => {
  const cjs = await resolvesThroughExports('', 'node.js', 'index.cjs');
  assert.equal(typeof (await cjs.load()).LicenseClient, 'function');
  const manifest = JSON.parse(await readFile(join(PACKAGE_DIR, 'package.json'), 'utf8'));
  assert.equal(manifest.exports['.'].default, './browser.js');
  assert.equal(manifest.exports['.'].browser, './browser.js');
  assert.equal(manifest.type, 'module');
  // Every module is free of side effects but polar-license/ui, which defines its custom element
  // when imported (`import 'polar-license/ui'` must not be dropped by a bundler).
  assert.deepEqual(manifest.sideEffects, ['./ui.js']);
  assert.equal(manifest.engines.node, '>=18');
});

test('the tarball ships exactly the allowlist', async () => {
  const files = (await readdir(PACKAGE_DIR)).sort();
  assert.deepEqual(files, [
    'LICENSE-APACHE',
    'LICENSE-MIT',
    'README.md',
    'browser.js',
    'commonjs.cjs',
    'devices.d.ts',
    'devices.js',
    'emulator-cli.js',
    'emulator.cjs',
    'emulator.d.cts',
    'emulator.d.ts',
    'emulator.js',
    'files.js',
    'index.cjs',
    'index.d.cts',
    'index.d.ts',
    'inline-node.js',
    'inline.cjs',
    'inline.d.cts',
    'inline.d.ts',
    'inline.js',
    'license.js',
    'node.js',
    'package.json',
    'polar_license.js',
    'polar_license_bg.wasm',
    'polar_license_devices.js',
    'polar_license_devices_bg.wasm',
    'polar_license_ed25519.js',
    'polar_license_ed25519_bg.wasm',
    'polar_license_emulator.js',
    'polar_license_emulator_bg.wasm',
    'polar_license_inline.js',
    'polar_license_relay.js',
    'polar_license_relay_bg.wasm',
    'polar_license_seat.js',
    'polar_license_seat_bg.wasm',
    'polar_license_stopped.js',
    'polar_license_trial.js',
    'polar_license_trial_bg.wasm',
    'polar_license_usage.js',
    'polar_license_usage_bg.wasm',
    'relay-handler.js',
    'relay-node.js',
    'relay-workerd.js',
    'relay.d.ts',
    'relay.js',
    'seat.d.ts',
    'seat.js',
    'ui.d.ts',
    'ui.js',
    'usage.d.ts',
    'usage.js',
    'workerd.js',
  ]);
});

test('LicenseError is a real Error subclass with a stable code', async () => {
  const e = await rejection(client().validate(''));
  assert.ok(e instanceof LicenseError);
  assert.ok(e instanceof Error);
  assert.equal(e.name, 'LicenseError');
  assert.equal(e.code, 'invalid_input');
  assert.equal(e.kind, 'error');
  assert.equal(e.field, 'key');
  assert.equal(e.detail, 'key: must not be empty');
  assert.equal(e.message, 'invalid_input: key: must not be empty');
  assert.equal(typeof e.stack, 'string');
  const notString = await rejection(client().check(42));
  assert.equal(notString.code, 'invalid_input');
});

test('REASONS is the Rust reason table', async () => {
  // The engine's glue as shipped for the inline entries (node.js carries its own copy inside
  // it, issue #38), with the package's wasm.
  const glue = await import(pathToFileURL(join(PACKAGE_DIR, 'polar_license.js')).href);
  glue.initSync({ module: await readFile(join(PACKAGE_DIR, 'polar_license_bg.wasm')) });
  const rows = JSON.parse(new glue.Engine(JSON.stringify({ organizationId: ORG }), 'null').call('reasonTable', []));
  assert.deepEqual(
    Object.fromEntries(rows.map((r) => [r.code, r.kind])),
    { ...REASONS },
  );
  assert.equal(rows.length, 23); // docs/interfaces.md §1's 18, not_yet_verified, replayed, seats_full, credits_exhausted and seat_lost
  assert.ok(Object.isFrozen(REASONS));
});

test('a WebAssembly that cannot be loaded rejects every call with load_error', async () => {
  // The package as a bundler that forgot the asset would leave it: no .wasm beside the JS.
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-nowasm-'));
  try {
    await cp(PACKAGE_DIR, dir, { recursive: true });
    await rm(join(dir, 'polar_license_bg.wasm'));
    const broken = await import(pathToFileURL(join(dir, 'node.js')).href);
    const c = new broken.LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory' });
    for (const call of [() => c.check('K-1'), () => c.status('K-1'), () => broken.init()]) {
      const e = await rejection(call());
      assert.ok(e instanceof broken.LicenseError, String(e));
      assert.deepEqual([e.code, e.kind], ['load_error', 'error']);
      assert.match(e.detail, /^the WebAssembly could not be loaded: .*ENOENT/);
      assert.match(e.detail, /not beside the JS that loads it: .*import from 'polar-license\/inline'/);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a denial rejects with kind denied and the HTTP status', async () => {
  const key = await newKey({ status: 'revoked' });
  const e = await rejection(client().check(key));
  assert.equal(e.code, 'inactive');
  assert.equal(e.kind, 'denied');
  assert.equal(e.status, 404);
  assert.equal(e.detail, 'License key is no longer active.');
  const usage = await newKey({ limit_usage: 2 });
  const u = await rejection(client().validate(usage, { incrementUsage: 3 }));
  assert.equal(u.code, 'usage_exhausted');
  assert.equal(u.remainingUsages, 2);
});

test('an unreachable server rejects with kind unverified', async () => {
  const e = await rejection(client({ baseUrl: DEAD }).validate('K-1'));
  assert.equal(e.code, 'offline');
  assert.equal(e.kind, 'unverified');
  assert.equal(e.timeout, false);
  assert.match(e.message, /^offline: /);
});

test('bad call input names the field; an empty cache says so', async () => {
  const key = await newKey();
  const c = client();
  const usage = await rejection(c.validate(key, { incrementUsage: -1 }));
  assert.deepEqual([usage.code, usage.field], ['invalid_input', 'increment_usage']);
  const pasted = await rejection(c.check(`${key}\n`));
  assert.deepEqual([pasted.code, pasted.field], ['invalid_input', 'key']);
  // Nothing remembered and no activationId: nothing to deactivate.
  const none = await rejection(c.deactivate(key));
  assert.deepEqual([none.code, none.field], ['invalid_input', 'activation_id']);
  const status = await c.status(key);
  assert.equal(status.state, 'empty');
  assert.equal(status.graceRemaining, null);
  assert.equal(status.license, null);
});

test("results are camelCase, but the app's own maps keep their keys", async () => {
  const key = await newKey();
  const c = client();
  const meta = { plan_tier: 'pro', 'build-id': 7 };
  const conditions = { machine_kind: 'desktop' };
  const { activation, license } = await c.activate(key, { label: 'camel', meta, conditions });
  assert.deepEqual(activation.meta, meta);
  assert.equal(typeof activation.licenseKeyId, 'string');
  assert.equal(activation.license_key_id, undefined);
  assert.match(license.displayKey, /^\*\*\*\*-/);
  assert.equal(license.limitActivations, 3);
  assert.equal(license.display_key, undefined);
  const checked = await c.check(key);
  assert.deepEqual(checked.activation.meta, meta);
  assert.equal(typeof checked.license.customer.emailVerified, 'boolean');
  assert.equal(checked.license.customer.email_verified, undefined);
});

test('bad options reject the first call with invalid_input and the field', async () => {
  const cases = [
    [{ organizationId: 'nope' }, 'organization_id'],
    [{ organizationId: ORG, baseUrl: 'http://example.com' }, 'base_url'],
    [{ organizationId: ORG, gracePolicy: { gracePeriod: 0 } }, 'grace_period'],
    [{ organizationId: ORG, timeout: -1 }, 'timeout'],
    [{ organizationId: ORG, organisationId: ORG }, 'options'],
    [{ organizationId: ORG, storage: 42 }, 'storage'],
    [{ organizationId: ORG, storage: {} }, 'storage'],
  ];
  for (const [options, field] of cases) {
    const e = await rejection(new LicenseClient(options).status('K'));
    assert.equal(e.code, 'invalid_input', JSON.stringify(options));
    assert.equal(e.field, field, JSON.stringify(options));
  }
  // As the README says: the constructor never throws, the first call rejects.
  const none = await rejection(new LicenseClient().status('K'));
  assert.ok(none instanceof LicenseError);
  assert.deepEqual([none.code, none.field], ['invalid_input', 'options']);
});

test('a sync storage adapter carries the cache to another client', async () => {
  // The same origin (a relay in front of the emulator) for both clients: a record answers
  // only a client of the server it came from.
  const polar = await relay(EMULATOR);
  try {
    const storage = mapStorage();
    const key = await newKey();
    const online = await client({ storage, baseUrl: polar.url }).check(key);
    assert.equal(online.source, 'online');
    assert.equal(online.graceRemaining, null);
    assert.equal(online.license.key, key);
    assert.deepEqual([online.reason, online.cacheRefreshed], [null, true]);
    polar.mode = 'down';
    const offline = await client({ storage, baseUrl: polar.url, gracePolicy: { revalidateAfter: 0 } }).check(key);
    assert.equal(offline.source, 'cache');
    assert.ok(offline.graceRemaining > 6 * 86400);
    assert.equal(offline.verifiedAt, online.verifiedAt);
    assert.deepEqual([offline.reason, offline.cacheRefreshed], ['offline', true]);
    // The same key through another server (here: the emulator itself): no cache there.
    const elsewhere = await rejection(client({ storage, baseUrl: DEAD }).check(key));
    assert.equal(elsewhere.code, 'offline');
    const status = await client({ storage, baseUrl: polar.url }).status(key);
    assert.equal(status.state, 'present');
    assert.equal(status.license.key, status.license.displayKey);
    await client({ storage, baseUrl: polar.url }).forget(key);
    assert.equal((await client({ storage, baseUrl: polar.url }).status(key)).state, 'empty');
  } finally {
    await polar.close();
  }
});

test('the clock option moves the grace: grace_expired, then clock_rollback', async () => {
  const polar = await relay(EMULATOR);
  try {
    const storage = mapStorage();
    const key = await newKey();
    await client({ storage, baseUrl: polar.url }).check(key);
    polar.mode = 'down';
    let now = Date.now() + 8 * 86400_000;
    const later = client({ storage, baseUrl: polar.url, clock: () => now, gracePolicy: { revalidateAfter: 0 } });
    const expired = await rejection(later.check(key));
    assert.equal(expired.code, 'grace_expired');
    assert.equal(expired.kind, 'unverified');
    now = Date.now() - 86400_000;
    const rolled = await rejection(later.check(key));
    assert.equal(rolled.code, 'clock_rollback');
  } finally {
    await polar.close();
  }
});

test('concurrent checks of a key: one asks Polar, the others answer from the cache at once', async () => {
  // No lock is held while Polar is asked: while one check asks, the others of the key find it
  // asking and answer from the cache (recorded) instead of waiting for its answer in turn.
  const key = await newKey();
  const c = client({ gracePolicy: { revalidateAfter: 0 } });
  const first = await c.check(key);
  assert.equal(first.source, 'online');
  const results = await Promise.all([1, 2, 3, 4, 5].map(() => c.check(key)));
  assert.deepEqual(results.map((r) => r.source).sort(), ['cache', 'cache', 'cache', 'cache', 'online']);
  for (const r of results) assert.equal(r.cacheRefreshed, true);
});

test('activate binds to machineId and the checks send it', async () => {
  const key = await newKey();
  const storage = 'memory';
  const a = client({ storage, machineId: 'machine-a' });
  const { activation } = await a.activate(key, { label: 'a', conditions: { seat: 1 } });
  const checked = await a.check(key);
  assert.equal(checked.activation.id, activation.id);
  const e = await rejection(
    client({ machineId: 'machine-b' }).validate(key, {
      activationId: activation.id,
      conditions: { seat: 1, machine_fingerprint: 'elsewhere' },
    }),
  );
  assert.equal(e.code, 'conditions_mismatch');
  const { activationId } = await a.deactivate(key);
  assert.equal(activationId, activation.id);
});

test('requireActivation refuses a key not activated here, before any request', async () => {
  const key = await newKey();
  const map = new Map();
  const storage = { get: (n) => map.get(n), set: (n, v) => void map.set(n, v), remove: (n) => void map.delete(n) };
  // Polar validates the bare key: without the option a machine that never activated is licensed.
  assert.equal((await client({ storage }).check(key)).source, 'online');
  // With it, refused with no request: a dead server would have answered offline.
  const refused = await rejection(client({ storage, baseUrl: DEAD, requireActivation: true }).check(key));
  assert.equal(refused.code, 'invalid_input');
  assert.equal(refused.field, 'activation_id');
  const c = client({ storage, requireActivation: true, machineId: 'machine-a' });
  const { activation } = await c.activate(key, { label: 'a' });
  assert.equal((await c.check(key)).activation.id, activation.id);
  await c.deactivate(key);
  const again = await rejection(c.check(key));
  assert.equal(again.code, 'invalid_input');
  assert.equal(again.field, 'activation_id');
  const bad = await rejection(client({ requireActivation: 'yes' }).status(key));
  assert.equal(bad.code, 'invalid_input');
  assert.equal(bad.field, 'options');
});
