// polar-license/devices buy() (issue #80) through the installed npm package: a purchase unlocks
// the app with no key typed, with the customer session Polar adds to the success URL (the key
// issued 1.5 s after paying, so it is missing at first and waited for), and without one (a
// buyer Polar matched by email: the code sent to the checkout's address). The buyer pays as
// Polar's hosted page would (the test confirms the checkout); the package's own emulator, in
// process, with the demo seed's product and checkout link. Then a checkout the seller's relay
// makes (`openRelayCheckout`), and signed mode, whose base URL is the relay: the portal and the
// checkouts at `portalUrl` (Polar), the relay found at the base URL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ORG, PACKAGE_DIR, README_KEY, mapStorage, nodeRelay, pkg, rejection } from './emulator.mjs';

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

const DEMO_PRODUCT = '3f9e1c2d-7b4a-4e8f-9a1b-2c3d4e5f6a7b'; // the demo seed's product

/** The emulator and the package's relay in front of it, selling the demo product. */
async function relayed(t, kid) {
  const polar = await emulator(t, 0);
  const relay = await nodeRelay(polar.url, kid, { checkout: { products: [DEMO_PRODUCT] } });
  t.after(relay.close);
  return { polar, relay };
}

test('signed mode: a checkout the relay at the base URL makes, followed at portalUrl, unlocks with no key typed', async (t) => {
  const { polar, relay } = await relayed(t, 'buy-signed');
  // The gate's one options object, as it hands it to both.
  const options = { organizationId: ORG, baseUrl: relay.url, relayKeys: relay.pair, portalUrl: polar.url };
  const app = new LicenseClient({ ...options, storage: mapStorage(), machineId: `m-${Math.random()}` });
  const d = devices(options);
  const url = await d.openRelayCheckout(DEMO_PRODUCT, { metadata: { app_version: '1.4.2', seats: 3 }, email: 'relay.buyer@example.com' });
  assert.match(url, /\/checkout\/polar_c_/);
  // Polar's checkout, made by the relay with what the app asked: prefilled, open.
  const read = await (await fetch(`${polar.url}/v1/checkouts/client/${url.split('/checkout/')[1]}`)).json();
  assert.equal(read.status, 'open');
  assert.equal(read.product_id, DEMO_PRODUCT);
  assert.equal(read.customer_email, 'relay.buyer@example.com');
  const token = await pay(polar, url, 'relay.buyer@example.com');
  const bought = await d.buy(url, { successUrl: `https://app.example/thanks?customer_session_token=${token}`, client: app, label: 'node' });
  assert.ok(bought.activation.activation.id);
  const checked = await app.check();
  assert.ok(checked.license, JSON.stringify(checked));
  // Without portalUrl the purchase's reads go to the relay, which serves no checkout.
  const lost = await rejection(devices({ ...options, portalUrl: undefined }).buy(url, { sessionToken: token }));
  assert.equal(lost.code, 'checkout_not_found');
});

test('signed mode: the sign-in and the customer\'s keys at portalUrl; devices listed through the relay at the base URL', async (t) => {
  const { polar, relay } = await relayed(t, 'devices-signed');
  const options = { organizationId: ORG, baseUrl: relay.url, relayKeys: relay.pair, portalUrl: polar.url };
  const app = new LicenseClient({ ...options, storage: mapStorage(), machineId: `m-${Math.random()}` });
  const mine = (await app.activate(README_KEY, { label: 'This laptop' })).activation.id;
  // No session: signed mode's relay is known, and lists the key's devices, this one marked.
  const listed = await devices(options).list(README_KEY, { activationId: mine });
  assert.deepEqual(listed.devices.filter((x) => x.thisMachine).map((x) => x.id), [mine]);
  // Unsigned, no relay named: nowhere to list without a session.
  const unsigned = await rejection(devices({ organizationId: ORG, baseUrl: polar.url }).list(README_KEY));
  assert.equal(unsigned.code, 'not_signed_in');
  // The code asked and the session opened at Polar; the customer's keys read there.
  const d = devices(options);
  await d.requestCode('jane.doe@gmail.com');
  await d.signIn((await (await fetch(`${polar.url}/__emulator/customer-session/codes`)).json()).codes[0].code);
  const keys = await d.recover();
  assert.ok(keys.some((k) => k.key === README_KEY), 'the demo key among the customer\'s');
  // Without portalUrl the code is asked of the relay, which serves no portal.
  const astray = await rejection(devices({ ...options, portalUrl: undefined }).requestCode('jane.doe@gmail.com'));
  assert.notEqual(astray.code, 'invalid_input');
  assert.equal((await (await fetch(`${polar.url}/__emulator/customer-session/codes`)).json()).codes.length, 0, 'no code sent through the relay');
});

test('a relay checkout asked wrong is refused before sending, or by the relay, typed', async (t) => {
  const { relay } = await relayed(t, 'buy-refused');
  const d = devices({ organizationId: ORG, baseUrl: relay.url, relay: relay.url });
  for (const [ask, field] of [
    [() => d.openRelayCheckout('pro-plan'), 'product_id'],
    [() => d.openRelayCheckout(DEMO_PRODUCT, { metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i])) }), 'metadata'],
    [() => d.openRelayCheckout(DEMO_PRODUCT, { metadata: { tags: ['a'] } }), 'metadata'],
    [() => devices({ organizationId: ORG, baseUrl: relay.url }).openRelayCheckout(DEMO_PRODUCT), 'relay_url'],
    [() => devices({ organizationId: ORG, relay: 'http://relay.example.com' }).openRelayCheckout(DEMO_PRODUCT), 'relay_url'],
  ]) {
    const e = await rejection(ask());
    assert.equal(e.code, 'invalid_input', e.message);
    assert.equal(e.field, field, e.message);
  }
  // The relay's refusals: a product it does not sell; a success URL on no origin it allows.
  // The core's words: the seller's settings, never the buyer's purchase.
  const unsold = await rejection(d.openRelayCheckout('0b9c5a61-3f2e-4d7a-8c1b-5e6f7a8b9c0d'));
  assert.equal(unsold.code, 'refused', unsold.message);
  assert.equal(unsold.message, 'This product cannot be bought from the app.');
  assert.equal(unsold.nextStep, 'Ask the seller to sell it through their relay.');
  const origin = await rejection(d.openRelayCheckout(DEMO_PRODUCT, { successUrl: 'https://evil.example/thanks' }));
  assert.equal(origin.code, 'refused', origin.message);
  assert.match(origin.nextStep, /success URL/);
});

test('a portalUrl that is not https (nor loopback) is refused as an option, on the client and on devices', async () => {
  const client = new LicenseClient({ organizationId: ORG, baseUrl: 'http://127.0.0.1:9', storage: mapStorage(), portalUrl: 'http://polar.example.com' });
  const e = await rejection(client.activate(README_KEY));
  assert.equal(e.code, 'invalid_input');
  assert.equal(e.field, 'portal_base_url');
  assert.match(e.message, /portalUrl/);
  const d = await rejection(devices({ organizationId: ORG, portalUrl: 'http://polar.example.com' }).requestCode('jane.doe@gmail.com'));
  assert.equal(d.code, 'invalid_input');
  assert.equal(d.field, 'portal_base_url');
});
