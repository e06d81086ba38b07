// polar-license/devices (issue #64) through the installed npm package: out of activations,
// sign in with the code Polar emails, list the key's devices (this machine's marked), free
// another by id, then activate here; and each failure typed: a wrong or used code, device
// management off, an expired session, the code rate limit, a key that is not the customer's,
// no session, bad input. Each test runs its own emulator (the package's, in process: the demo
// seed, the demo key with 3 slots on a benefit with device management on, its customer
// jane.doe@gmail.com), so its clock and its per-address code limit touch no other test. The
// code is read from the emulator's control route, as a person reads it from the email.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { ORG, PACKAGE_DIR, README_KEY, mapStorage, nodeRelay, pkg, rejection } from './emulator.mjs';

const { LicenseClient } = await pkg();
const devicesModule = await import(pathToFileURL(join(PACKAGE_DIR, 'devices.js')).href);
const { Devices, DevicesError, devices } = devicesModule;
const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);

const EMAIL = 'jane.doe@gmail.com';
const OTHER_BENEFIT = '0b6f7c1e-2d3a-4f5b-9c8d-7e6f5a4b3c2d';
const DEMO_CUSTOMER = '8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d';

async function emulator(t, options = {}) {
  const polar = await startEmulator(options);
  t.after(() => polar.close());
  return polar;
}

async function lastCode(polar) {
  const r = await fetch(`${polar.url}/__emulator/customer-session/codes`);
  assert.equal(r.status, 200);
  const { codes } = await r.json();
  assert.ok(codes.length > 0, 'a code was emailed');
  return codes[codes.length - 1].code;
}

function client(polar) {
  return new LicenseClient({ organizationId: ORG, baseUrl: polar.url, storage: mapStorage(), machineId: `m-${Math.random()}` });
}

async function signedIn(polar) {
  const d = devices({ organizationId: ORG, baseUrl: polar.url });
  await d.requestCode(EMAIL);
  await d.signIn((await lastCode(polar)).toLowerCase());
  assert.equal(d.signedIn, true);
  return d;
}

test('the module exports what devices.d.ts declares, and loads no wasm on import', async () => {
  assert.deepEqual(Object.keys(devicesModule).sort(), ['Devices', 'DevicesError', 'devices']);
  const dts = await readFile(join(PACKAGE_DIR, 'devices.d.ts'), 'utf8');
  const declared = [...dts.matchAll(/^export (?:class|function) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, ['Devices', 'DevicesError', 'devices']);
  // A client made from the package's default entry never names the module.
  const entry = await readFile(join(PACKAGE_DIR, 'node.js'), 'utf8');
  assert.ok(!entry.includes('polar_license_devices'), 'the default entry names the devices module');
});

test('sign in, list (this machine marked), free another and activate here at the limit', async (t) => {
  const polar = await emulator(t);
  const [old, desk, here, fresh] = [client(polar), client(polar), client(polar), client(polar)];
  const oldId = (await old.activate(README_KEY, { label: 'Old laptop' })).activation.id;
  const deskId = (await desk.activate(README_KEY, { label: 'Desktop' })).activation.id;
  const hereId = (await here.activate(README_KEY, { label: 'This laptop' })).activation.id;
  const refused = await rejection(fresh.activate(README_KEY, { label: 'New laptop' }));
  assert.equal(refused.code, 'activation_limit');

  const d = new Devices({ organizationId: ORG, baseUrl: polar.url });
  assert.equal(d.signedIn, false);
  const none = await rejection(d.list(README_KEY));
  assert.ok(none instanceof DevicesError);
  assert.deepEqual([none.code, none.reason], ['not_signed_in', 'invalid_input']);

  await d.requestCode(EMAIL);
  const wrong = await rejection(d.signIn('ZZZZZ9'));
  assert.deepEqual([wrong.code, wrong.reason], ['code_invalid_or_expired', null]);
  // The core's words for it (PortalError::message, issue #80), as every face's.
  assert.equal(wrong.nextStep, 'Ask for a new code and type it within 30 minutes.');
  assert.ok(wrong.userMessage.endsWith(': ask for a new code and type it within 30 minutes.'), wrong.userMessage);
  assert.equal(d.signedIn, false);
  const code = await lastCode(polar);
  await d.signIn(code.toLowerCase());
  assert.equal(d.signedIn, true);
  // The session never shows.
  for (const shown of [inspect(d), JSON.stringify(d), String(d)]) assert.ok(!shown.includes('polar_cst_'), shown);

  const listed = await d.list(README_KEY, { activationId: hereId });
  assert.equal(listed.limitActivations, 3);
  assert.deepEqual(
    listed.devices.map((x) => [x.id, x.label, x.thisMachine]),
    [[oldId, 'Old laptop', false], [deskId, 'Desktop', false], [hereId, 'This laptop', true]],
  );
  assert.ok(listed.devices.every((x) => Number.isInteger(x.activatedAt) && x.activatedAt > 1.7e9));
  assert.match(listed.keyId, /^[0-9a-f-]{36}$/);

  // The code is used: a second sign-in with it is refused; the session held stays.
  assert.equal((await rejection(d.signIn(code))).code, 'code_invalid_or_expired');
  assert.equal(d.signedIn, true);

  // The new machine frees the old laptop (dead: no app there) and activates here.
  await d.free(README_KEY, oldId);
  const newId = (await fresh.activate(README_KEY, { label: 'New laptop' })).activation.id;
  const after = await d.list(README_KEY, { activationId: newId });
  assert.deepEqual(after.devices.map((x) => [x.id, x.thisMachine]), [[deskId, false], [hereId, false], [newId, true]]);
  // Freed again: Polar's not_found.
  const again = await rejection(d.free(README_KEY, oldId));
  assert.deepEqual([again.code, again.status], ['not_found', 404]);

  // Not the customer's key.
  const other = await rejection(d.list('SOMEONE-ELSES-KEY'));
  assert.deepEqual([other.code, other.reason], ['key_not_found', 'not_found']);

  d.signOut();
  assert.equal((await rejection(d.list(README_KEY))).code, 'not_signed_in');
});

test('device management off, an expired session, bad input', async (t) => {
  const polar = await emulator(t);
  const key = `JS-OFF-${Math.random().toString(36).slice(2)}`;
  polar.addKey({ key, benefit_id: OTHER_BENEFIT, customer_id: DEMO_CUSTOMER, limit_activations: 2 });
  const c = client(polar);
  const id = (await c.activate(key, { label: 'This laptop' })).activation.id;
  const d = await signedIn(polar);
  const off = await rejection(d.list(key, { activationId: id }));
  assert.equal(off.code, 'device_management_off');
  assert.match(off.message, /enable_customer_admin/);
  // Freeing by id still works.
  await d.free(key, id);

  // Bad input: refused unsent, typed, naming the field.
  const padded = await rejection(d.list(' padded '));
  assert.deepEqual([padded.code, padded.field], ['invalid_input', 'key']);
  assert.deepEqual([(await rejection(d.requestCode('not-an-email'))).field], ['email']);
  assert.deepEqual([(await rejection(d.signIn('12'))).field], ['code']);
  assert.deepEqual([(await rejection(d.free(key, 'not-a-uuid'))).field], ['activation_id']);
  assert.equal((await rejection(d.list(42))).code, 'invalid_input');
  assert.equal(d.signedIn, true);
  assert.throws(() => new Devices({ organizationId: 7 }), (e) => e.code === 'invalid_input' && e.field === 'organizationId');
  const badOrg = await rejection(new Devices({ organizationId: 'nope', baseUrl: polar.url }).requestCode(EMAIL));
  assert.deepEqual([badOrg.code, badOrg.field], ['invalid_input', 'organization_id']);

  // An hour later on Polar's clock: expired, and forgotten.
  polar.setClockOffset(3601);
  const expired = await rejection(d.list(README_KEY));
  assert.deepEqual([expired.code, expired.reason], ['session_expired', null]);
  assert.equal(d.signedIn, false);
  assert.equal((await rejection(d.list(README_KEY))).code, 'not_signed_in');
});

test('the code routes rate limit with the wait; no answer is offline', async (t) => {
  const polar = await emulator(t, { rateLimit: true });
  const d = devices({ organizationId: ORG, baseUrl: polar.url });
  let limited = null;
  let tries = 0;
  while (!limited && tries < 13) {
    tries += 1;
    try {
      await d.requestCode(EMAIL);
    } catch (e) {
      limited = e;
    }
  }
  assert.equal(tries, 7);
  assert.deepEqual([limited.code, limited.reason], ['rate_limited', 'rate_limited']);
  assert.ok(limited.retryAfter > 0 && limited.retryAfter <= 900, String(limited.retryAfter));
  assert.equal((await rejection(d.signIn('ABC123'))).code, 'rate_limited');

  const down = devices({ organizationId: ORG, baseUrl: 'http://127.0.0.1:9' });
  const offline = await rejection(down.requestCode(EMAIL));
  assert.deepEqual([offline.code, offline.reason], ['offline', 'offline']);
});

test("key recovery: the customer's keys this device can activate, the whole key only for the activation", async (t) => {
  const polar = await emulator(t);
  const d = new Devices({ organizationId: ORG, baseUrl: polar.url });
  assert.equal((await rejection(d.recover())).code, 'not_signed_in');
  const lost = 'LOST-7D2C9A4E-1B3F-4C5D-8E6F-0A1B2C3D4E5F';
  const expired = 'EXPD-7D2C9A4E-1B3F-4C5D-8E6F-0A1B2C3D4E60';
  const revoked = 'RVKD-7D2C9A4E-1B3F-4C5D-8E6F-0A1B2C3D4E61';
  polar.addKey({ key: lost, customer_id: DEMO_CUSTOMER, customer_email: EMAIL, limit_activations: 2 });
  polar.addKey({ key: expired, customer_id: DEMO_CUSTOMER, customer_email: EMAIL, expires_at: '2024-01-31T00:00:00Z' });
  polar.addKey({ key: revoked, customer_id: DEMO_CUSTOMER, customer_email: EMAIL, status: 'revoked' });
  await d.requestCode(EMAIL);
  await d.signIn(await lastCode(polar));
  const keys = await d.recover();
  const shown = keys.map((k) => k.displayKey);
  // Granted and unexpired only (the core's recoverable_keys): the demo key and the lost one.
  assert.ok(shown.includes(`****-${lost.slice(-6)}`), JSON.stringify(shown));
  assert.ok(shown.includes(`****-${README_KEY.slice(-6)}`), JSON.stringify(shown));
  for (const gone of [expired, revoked]) assert.ok(!shown.includes(`****-${gone.slice(-6)}`), `${gone} offered`);
  const item = keys.find((k) => k.displayKey.endsWith(lost.slice(-6)));
  assert.equal(item.key, lost);
  assert.equal(item.limitActivations, 2);
  assert.equal(item.expiresAt, null);
  assert.match(item.id, /^[0-9a-f-]{36}$/);
  // When it was made (unix seconds): what tells two keys of one customer apart on a screen.
  assert.ok(Number.isInteger(item.createdAt) && Math.abs(item.createdAt - Date.now() / 1000) < 600, String(item.createdAt));
  // The whole key is not enumerable: no JSON, no inspect, no spread shows it.
  assert.deepEqual(Object.keys(item).sort(), ['benefitId', 'createdAt', 'displayKey', 'expiresAt', 'id', 'limitActivations']);
  for (const text of [JSON.stringify(keys), inspect(keys), JSON.stringify({ ...item })]) {
    assert.ok(!text.includes(lost) && !text.includes(README_KEY), text);
  }
  const activated = await client(polar).activate(item.key, { label: 'Recovered here' });
  assert.equal(activated.activation.label, 'Recovered here');
  assert.deepEqual(polar.activations(lost).map((a) => a.label), ['Recovered here']);
});

// Issue #64: with no session, the seller's relay (`polar-license/relay` in node, in front of
// the package's emulator) lists the key's devices: the key proves it is the customer's, the
// relay's machine reads them with a GET of Polar's token route (its handler passes the method
// through to fetch). This machine's marked; a key Polar does not know is `key_not_found`.
test("without a session the seller's relay lists the devices", async (t) => {
  const polar = await emulator(t);
  const relay = await nodeRelay(polar.url, 'devices-js');
  t.after(relay.close);
  const relayUrl = relay.url;

  const [old, here] = [client(polar), client(polar)];
  const oldId = (await old.activate(README_KEY, { label: 'Old laptop' })).activation.id;
  const hereId = (await here.activate(README_KEY, { label: 'This laptop' })).activation.id;
  const d = devices({ organizationId: ORG, baseUrl: polar.url, relay: relayUrl });
  assert.equal(d.signedIn, false);
  const listed = await d.list(README_KEY, { activationId: hereId });
  assert.deepEqual(
    listed.devices.map((x) => [x.id, x.label, x.thisMachine]),
    [
      [oldId, 'Old laptop', false],
      [hereId, 'This laptop', true],
    ],
  );
  assert.equal(listed.limitActivations, 3);
  // No code was emailed: no session was asked for.
  const codes = await (await fetch(`${polar.url}/__emulator/customer-session/codes`)).json();
  assert.equal(codes.codes.length, 0);
  const unknown = await rejection(d.list('NOT-A-REAL-KEY-1'));
  assert.equal(unknown.code, 'key_not_found');
  // Without a relay nor a session: sign in first.
  const none = await rejection(devices({ organizationId: ORG, baseUrl: polar.url }).list(README_KEY));
  assert.equal(none.code, 'not_signed_in');
});
