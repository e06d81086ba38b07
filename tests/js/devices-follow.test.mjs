// polar-license/devices's followRotation (issue #64 item 4) through the installed npm package:
// the customer rotates the key at Polar (the emulator's rotate: the key's id, limits and
// activations kept, the old string 404 at once), the client's check of the old string is
// not_found, and the key is followed through a customer session to its new string with this
// machine's activation kept (no slot taken): the client's next check of the new string answers
// from the record the follow wrote, the old string's record is gone, and the remembered key is
// the new one. The core's follow machine runs in the devices module's wasm; the client's
// storage, locks and fetch do its IO (license.js's door). Each failure typed. Each test runs
// its own emulator (the package's, in process), as tests/js/devices.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { ORG, PACKAGE_DIR, README_KEY, mapStorage, nodeRelay, pkg, rejection } from './emulator.mjs';

const { LicenseClient } = await pkg();
const { Devices, DevicesError } = await import(pathToFileURL(join(PACKAGE_DIR, 'devices.js')).href);
const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);

const EMAIL = 'jane.doe@gmail.com';

async function emulator(t) {
  const polar = await startEmulator();
  t.after(() => polar.close());
  return polar;
}

async function signedIn(polar) {
  const d = new Devices({ organizationId: ORG, baseUrl: polar.url });
  await d.requestCode(EMAIL);
  const { codes } = await (await fetch(`${polar.url}/__emulator/customer-session/codes`)).json();
  await d.signIn(codes.at(-1).code);
  return d;
}

/** A client that asks Polar on every check (the rotation is seen at once). */
function client(polar, storage = mapStorage()) {
  return new LicenseClient({
    organizationId: ORG,
    baseUrl: polar.url,
    storage,
    machineId: 'machine-follow',
    rememberKeys: true,
    gracePolicy: { revalidateAfter: 0 },
  });
}

async function rotate(polar, key) {
  const r = await fetch(`${polar.url}/__emulator/keys/${key}/rotate`, { method: 'POST' });
  assert.equal(r.status, 200);
  return (await r.json()).key;
}

async function activations(polar, key) {
  return (await (await fetch(`${polar.url}/__emulator/keys/${key}/activations`)).json()).length;
}

test('a rotated key keeps working: followed to its new string, this activation kept, remembered in its place', async (t) => {
  const polar = await emulator(t);
  const storage = mapStorage();
  const app = client(polar, storage);
  const here = (await app.activate(README_KEY, { label: 'This laptop' })).activation.id;
  assert.equal(await app.rememberedKey(), README_KEY);
  const slots = await activations(polar, README_KEY);
  const rotated = await rotate(polar, README_KEY);
  assert.notEqual(rotated, README_KEY);
  assert.equal((await rejection(app.check(README_KEY))).code, 'not_found');

  const d = await signedIn(polar);
  // Default: the client's remembered key (the old string).
  const followed = await d.followRotation(app);
  assert.equal(followed.key, rotated, 'the new string');
  assert.equal(followed.activationId, here, 'validated with this machine activation');
  assert.equal(followed.remembered, true);
  assert.ok(followed.license.displayKey.endsWith(rotated.slice(-6)), followed.license.displayKey);
  assert.equal(typeof followed.license.id, 'string');
  // The whole new key never shows.
  assert.ok(!JSON.stringify(followed).includes(rotated));
  assert.ok(!inspect(followed).includes(rotated));
  // No slot taken: the rotated key's activations are the ones it had.
  assert.equal(await activations(polar, rotated), slots);

  // The client now answers the new string from the record the follow wrote (no request).
  assert.equal(await app.rememberedKey(), rotated);
  const status = await app.status(rotated);
  assert.deepEqual([status.state, status.standing, status.activation.id], ['present', 'licensed', here]);
  assert.equal(status.license.displayKey, followed.license.displayKey);
  const cached = await new LicenseClient({ organizationId: ORG, baseUrl: polar.url, storage, machineId: 'machine-follow' }).check(rotated);
  assert.equal(cached.source, 'cache');
  assert.equal(cached.activation.id, here);
  // The remembered key (the new one) checked online: Polar licenses it with this activation.
  const fresh = await app.check();
  assert.deepEqual([fresh.source, fresh.activation.id, fresh.license.displayKey], ['online', here, followed.license.displayKey]);
  // The old string's record is forgotten: nothing of it is cached to follow again.
  assert.equal((await app.status(README_KEY)).state, 'empty');
  const again = await rejection(d.followRotation(app, { key: README_KEY }));
  assert.ok(again instanceof DevicesError);
  assert.deepEqual([again.code, again.field], ['invalid_input', 'key']);
});

test('a key that was not rotated is not_found; no session, no client, no key: typed, nothing asked', async (t) => {
  const polar = await emulator(t);
  const app = client(polar);
  await app.activate(README_KEY, { label: 'This laptop' });

  const out = new Devices({ organizationId: ORG, baseUrl: polar.url });
  const none = await rejection(out.followRotation(app));
  assert.deepEqual([none.code, none.reason], ['not_signed_in', 'invalid_input']);

  const d = await signedIn(polar);
  const notRotated = await rejection(d.followRotation(app, { key: README_KEY }));
  assert.equal(notRotated.code, 'key_not_found');
  // The old string still licenses: nothing was forgotten.
  assert.equal((await app.status(README_KEY)).standing, 'licensed');

  const noClient = await rejection(d.followRotation({}, { key: README_KEY }));
  assert.deepEqual([noClient.code, noClient.field], ['invalid_input', 'client']);
  const badKey = await rejection(d.followRotation(app, { key: 42 }));
  assert.deepEqual([badKey.code, badKey.field], ['invalid_input', 'key']);
  const bare = client(polar);
  const nothing = await rejection(d.followRotation(bare));
  assert.deepEqual([nothing.code, nothing.field], ['invalid_input', 'key']);
});

test('signed mode: the follow reads the customer\'s keys at the client\'s portalUrl and validates the new string at the relay', async (t) => {
  const polar = await emulator(t);
  const relay = await nodeRelay(polar.url, 'follow-signed');
  t.after(relay.close);
  const storage = mapStorage();
  const signed = (portalUrl) => new LicenseClient({
    organizationId: ORG,
    baseUrl: relay.url,
    relayKeys: relay.pair,
    ...(portalUrl ? { portalUrl } : {}),
    storage,
    machineId: 'machine-follow-signed',
    rememberKeys: true,
    gracePolicy: { revalidateAfter: 0 },
  });
  const app = signed(polar.url);
  const here = (await app.activate(README_KEY, { label: 'This laptop' })).activation.id;
  const rotated = await rotate(polar, README_KEY);
  assert.equal((await rejection(app.check(README_KEY))).code, 'not_found');
  const d = await signedIn(polar);
  // The same cache without portalUrl: the follow lists the keys at the relay, which serves no
  // portal, and fails (a protocol error: its 404 is no portal answer), nothing written.
  const lost = await rejection(d.followRotation(signed(undefined)));
  assert.equal(lost.code, 'protocol_error', lost.message);
  const followed = await d.followRotation(app);
  assert.equal(followed.key, rotated, 'the new string');
  assert.equal(followed.activationId, here, 'validated with this machine\'s activation');
  // The new string's record holds the relay's lease, verified by the client's host.
  const checked = await app.check();
  assert.ok(checked.license, JSON.stringify(checked));
  assert.equal(checked.lease?.kid, 'follow-signed', JSON.stringify(checked.lease));
});
