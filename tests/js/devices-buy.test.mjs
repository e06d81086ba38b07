// polar-license/devices buy() (issue #80) through the installed npm package: a purchase unlocks
// the app with no key typed, with the customer session Polar adds to the success URL (the key
// issued 1.5 s after paying, so it is missing at first and waited for), and without one (a
// buyer Polar matched by email: the code sent to the checkout's address). The buyer pays as
// Polar's hosted page would (the test confirms the checkout); the package's own emulator, in
// process, with the demo seed's product and checkout link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ORG, PACKAGE_DIR, mapStorage, pkg, rejection } from './emulator.mjs';

const { LicenseClient } = await pkg();
const { devices } = await import(pathToFileURL(join(PACKAGE_DIR, 'devices.js')).href);
const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);

const LINK = 'polar_cl_emulatorDemoLink0123456789abcdefghijk';

async function emulator(t, delayMs) {
  const polar = await startEmulator();
  t.after(() => polar.close());
  const r = await fetch(`${polar.url}/__emulator/checkouts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key_issue_delay_ms: delayMs }) });
  assert.equal(r.status, 204);
  return polar;
}

/** A checkout opened from the demo link, as a browser would: its URL. */
async function open(polar) {
  const r = await fetch(`${polar.url}/v1/checkout-links/${LINK}/redirect`, { redirect: 'manual' });
  assert.equal(r.status, 307);
  return r.headers.get('location');
}

/** The buyer pays with `email`: the session token Polar's answer carries, or null. */
async function pay(polar, url, email) {
  const secret = url.split('/checkout/')[1];
  const r = await fetch(`${polar.url}/v1/checkouts/client/${secret}/confirm`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ customer_email: email }) });
  assert.equal(r.status, 200);
  return (await r.json()).customer_session_token;
}

function client(polar) {
  return new LicenseClient({ organizationId: ORG, baseUrl: polar.url, storage: mapStorage(), machineId: `m-${Math.random()}` });
}

test('a purchase with the success URL\'s session unlocks with no key typed, the late key waited for', async (t) => {
  const polar = await emulator(t, 1500);
  const url = await open(polar);
  const token = await pay(polar, url, 'new.buyer@example.com');
  assert.match(token, /^polar_cst_/);
  const app = client(polar);
  const began = Date.now();
  const bought = await devices({ organizationId: ORG, baseUrl: polar.url }).buy(url, { successUrl: `https://app.example/thanks?customer_session_token=${token}`, client: app, label: 'node' });
  assert.ok(Date.now() - began >= 1400, 'the key was missing at first: waited for');
  assert.match(bought.key.displayKey, /^\*\*\*\*-/);
  assert.ok(!JSON.stringify(bought.key).includes(bought.key.key), 'the whole key never in its JSON');
  assert.ok(bought.activation.activation.id);
  // The key is remembered: the check takes none.
  const checked = await app.check();
  assert.ok(checked.license, JSON.stringify(checked));
  assert.equal(checked.reason, null);
});

test('a purchase without a session sends the code to the checkout\'s address, then unlocks', async (t) => {
  const polar = await emulator(t, 0);
  const url = await open(polar);
  assert.equal(await pay(polar, url, 'jane.doe@gmail.com'), null, 'matched by email: no token');
  const d = devices({ organizationId: ORG, baseUrl: polar.url });
  const app = client(polar);
  const first = await d.buy(url, { client: app });
  assert.equal(first.signIn.email, 'jane.doe@gmail.com');
  assert.match(first.signIn.userMessage, /emailing a sign-in code to jane\.doe@gmail\.com/);
  const codes = (await (await fetch(`${polar.url}/__emulator/customer-session/codes`)).json()).codes;
  assert.equal(codes.length, 1);
  assert.equal(codes[0].email, 'jane.doe@gmail.com');
  await d.signIn(codes[0].code);
  const bought = await d.buy(url, { receipt: first.signIn, client: app });
  assert.ok(bought.activation.activation.id);
  assert.ok(!['DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A'].includes(bought.key.key), 'the key bought, not an older one');
  assert.ok((await app.check()).license);
});

test('a success URL\'s session wins over one held from an earlier sign-in: the key bought, not the signed-in customer\'s', async (t) => {
  const polar = await emulator(t, 0);
  const d = devices({ organizationId: ORG, baseUrl: polar.url });
  // Signed in as a customer with keys of the same product (the code path), then a purchase by another buyer.
  await d.requestCode('jane.doe@gmail.com');
  await d.signIn((await (await fetch(`${polar.url}/__emulator/customer-session/codes`)).json()).codes[0].code);
  const url = await open(polar);
  const token = await pay(polar, url, 'second.buyer@example.com');
  const bought = await d.buy(url, { successUrl: `https://app.example/thanks?customer_session_token=${token}` });
  const mine = await (await fetch(`${polar.url}/v1/customer-portal/license-keys/`, { headers: { authorization: `Bearer ${token}` } })).json();
  assert.deepEqual(mine.items.map((k) => k.id), [bought.key.id], 'the second buyer\'s key');
});

test('an expired checkout rejects typed, with the core\'s words', async (t) => {
  const polar = await emulator(t, 0);
  const url = await open(polar);
  const r = await fetch(`${polar.url}/__emulator/clock`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ offset_seconds: 25 * 3600 }) });
  assert.equal(r.status, 204);
  const e = await rejection(devices({ organizationId: ORG, baseUrl: polar.url }).buy(url));
  assert.equal(e.code, 'checkout_expired');
  assert.equal(e.message, 'This checkout expired before it was paid.');
});
