// Issue #37 on the npm package's relay: `polar-license/relay` with a verdict store, from the
// installed tarball, in node (a Map as its storage) and in Cloudflare's Workers runtime (the
// `workerd` npm package, offline) with a Durable Object holding the store on workerd's local
// disk. Each host: a validate asks Polar, the next is answered from the store (no call); a key
// revoked in Polar (the npm emulator, its webhooks delivered to the relay) is refused at the
// next check, from the store, with no call. Under workerd also: the store survives a restart of
// the runtime, and without the Durable Object binding the relay forwards every check and says so.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, relayUnderWorkerd, storeWorker } from './workerd.mjs';
import { ORG, PACKAGE_DIR, importAsApp, mapStorage, pkg, relaySigningKey } from './emulator.mjs';

const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const VALIDATE = '/v1/customer-portal/license-keys/validate';

const relayPkg = await importAsApp('relay-store-import.mjs', 'polar-license/relay');
const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);

const SIGNING_KEY = relaySigningKey('store-js').text;


let polar;
before(async () => {
  polar = await startEmulator({ webhookTimeScale: 0.001 });
});
after(async () => {
  await polar?.close();
});

const api = (path, method, body) =>
  fetch(`${polar.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, json: r.status === 204 ? null : await r.json() }));

/** An endpoint in the emulator for the relay at `url` that hears `events`: its secret. */
async function endpointFor(url, events = ['benefit_grant.revoked', 'benefit_grant.updated']) {
  const r = await api('/v1/webhooks/endpoints', 'POST', { url: `${url}/v1/webhooks/polar`, format: 'raw', events });
  assert.equal(r.status, 201);
  return r.json;
}

async function waitDelivered(endpointId, type) {
  const end = Date.now() + 15_000;
  for (;;) {
    const r = await api(`/v1/webhooks/deliveries?endpoint_id=${endpointId}&limit=100`, 'GET');
    if (r.json.items.some((d) => d.succeeded && d.webhook_event.type === type)) return;
    assert.ok(Date.now() < end, `no acknowledged ${type}: ${JSON.stringify(r.json.items.map((d) => [d.http_code, d.response]))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const check = (base, key) =>
  fetch(`${base}${VALIDATE}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key, organization_id: ORG }),
  }).then(async (r) => ({ status: r.status, source: r.headers.get('polar-license-source'), lease: r.headers.get('polar-license-lease'), body: await r.text() }));

function newKey() {
  const key = `RSTORE-${Math.random().toString(16).slice(2, 10).toUpperCase()}-4A5B6C`;
  polar.addKey({ key, limit_activations: 3 });
  return key;
}

/** The scenario every host plays: ask, store, revoke through the webhook, refused with no call. */
async function revokedThroughTheWebhook(base, endpointId) {
  const key = newKey();
  const first = await check(base, key);
  assert.equal(first.status, 200, first.body);
  assert.equal(first.source, 'polar');
  assert.ok(first.lease, 'a lease on a grant');
  const calls = polar.requestCount();
  const second = await check(base, key);
  assert.equal(second.status, 200);
  assert.equal(second.source, 'store');
  assert.ok(second.lease, 'a lease on a stored grant (signed by WebCrypto)');
  assert.equal(polar.requestCount(), calls, 'answered with no call to Polar');
  polar.updateKey(key, { status: 'revoked' });
  await waitDelivered(endpointId, 'benefit_grant.revoked');
  const refused = await check(base, key);
  assert.equal(refused.status, 404, refused.body);
  assert.equal(refused.source, 'store');
  assert.equal(refused.lease, null);
  assert.match(refused.body, /License key is no longer active\./);
  assert.equal(polar.requestCount(), calls, 'refused from the webhook, Polar not asked');
}

/**
 * The npm relay on node on `port`, in front of this suite's Polar, with `options` (its store,
 * storage) over the defaults; { url, close }.
 */
async function nodeRelay(port, options) {
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', ...options });
  const server = createServer(relayPkg.createNodeListener(relay));
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}`, close: () => Promise.all([new Promise((resolve) => server.close(resolve)), relay.close()]) };
}

test('node: the store answers a known key with no call, and a revocation arrives as a webhook', async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const endpoint = await endpointFor(url);
  const saved = new Map();
  const storage = {
    async load() {
      return [...saved.values()];
    },
    async save(items) {
      for (const item of items) {
        const key = `${item.op === 'put' || item.op === 'delete' ? 'e' : 'w'}:${item.id}`;
        if (item.op === 'put' || item.op === 'webhook') saved.set(key, item);
        else saved.delete(key);
      }
    },
  };
  const server = await nodeRelay(port, { store: { webhookSecret: endpoint.secret }, storage });
  try {
    await revokedThroughTheWebhook(url, endpoint.id);
    // What the store wrote is what a new relay reads back: a fresh relay answers from it.
    assert.ok([...saved.keys()].some((k) => k.startsWith('e:')));
    assert.ok([...saved.keys()].some((k) => k.startsWith('w:')), 'the webhook id was saved');
  } finally {
    await server.close();
  }
});

test("node: a stale grant says its Age, and the npm client's grace runs from Polar's answer, not the replay", async () => {
  const server = await nodeRelay(await freePort(), { store: { freshFor: 1, staleFor: 3600 } });
  const { url } = server;
  const { LicenseClient } = await pkg();
  // Unsigned (no relayKeys): it cannot tell the relay from Polar but by the headers.
  const app = new LicenseClient({ organizationId: ORG, baseUrl: url, storage: mapStorage(), gracePolicy: { revalidateAfter: 1 } });
  const key = newKey();
  try {
    const first = await app.check(key);
    assert.equal(first.source, 'online', JSON.stringify(first));
    assert.equal(first.relaySource, 'polar');
    // Polar revokes the key, then fails; no webhook tells the relay.
    polar.updateKey(key, { status: 'revoked' });
    polar.setFault({ kind: 'status', status: 503, body: 'Service Unavailable' });
    await new Promise((r) => setTimeout(r, 2_100));
    const raw = await fetch(`${url}${VALIDATE}`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://app.example' }, body: validateBody(key) });
    await raw.arrayBuffer();
    assert.equal(raw.headers.get('polar-license-source'), 'stale');
    const age = Number(raw.headers.get('age'));
    assert.ok(age >= 2 && age < 10, `age ${raw.headers.get('age')}`);
    assert.match(raw.headers.get('access-control-expose-headers'), /(^|, )age(,|$)/, 'a browser may read it');
    const replayed = await app.check(key);
    assert.equal(replayed.source, 'online', JSON.stringify(replayed));
    assert.equal(replayed.relaySource, 'stale', 'the client says the answer is a stale replay');
    assert.ok(
      Math.abs(replayed.verifiedAt - first.verifiedAt) <= 1,
      `verified at ${replayed.verifiedAt}, Polar answered at ${first.verifiedAt}`,
    );
    assert.equal(replayed.graceEndsAt - replayed.verifiedAt, 604_800);
    const status = await app.status(key);
    assert.ok(Math.abs(status.verifiedAt - first.verifiedAt) <= 1, JSON.stringify(status));
  } finally {
    polar.setFault(null);
    await server.close();
  }
});

test("node: a check through a relay with a store says where the relay took Polar's verdict from (relaySource)", async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', store: {} });
  const server = createServer(relayPkg.createNodeListener(relay));
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const { LicenseClient } = await pkg();
  const storage = mapStorage();
  // revalidateAfter 0: every check asks (the relay).
  const app = new LicenseClient({ organizationId: ORG, baseUrl: url, storage, gracePolicy: { revalidateAfter: 0 } });
  const key = newKey();
  try {
    const first = await app.check(key);
    assert.deepEqual([first.source, first.relaySource], ['online', 'polar'], JSON.stringify(first));
    const calls = polar.requestCount();
    const second = await app.check(key);
    assert.deepEqual([second.source, second.relaySource], ['online', 'store'], JSON.stringify(second));
    assert.equal(polar.requestCount(), calls, 'the relay answered from its store');
    // The cache's own answer (a client that need not ask yet, over the same storage): none.
    const cached = await new LicenseClient({ organizationId: ORG, baseUrl: url, storage }).check(key);
    assert.deepEqual([cached.source, cached.relaySource], ['cache', null], JSON.stringify(cached));
    // Polar's own answer, with no relay: none.
    const direct = await new LicenseClient({ organizationId: ORG, baseUrl: polar.url, storage: mapStorage() }).check(key);
    assert.deepEqual([direct.source, direct.relaySource], ['online', null], JSON.stringify(direct));
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('node: a forged webhook is refused and changes nothing', async () => {
  const server = await nodeRelay(await freePort(), { store: { webhookSecret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' } });
  const { url } = server;
  try {
    const key = newKey();
    const first = await check(url, key);
    const id = JSON.parse(first.body).id;
    const body = JSON.stringify({ type: 'benefit_grant.revoked', timestamp: new Date().toISOString(), data: { modified_at: new Date().toISOString(), properties: { license_key_id: id } } });
    const r = await fetch(`${url}/v1/webhooks/polar`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'webhook-id': 'evt-forged', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' },
      body,
    });
    assert.equal(r.status, 401);
    const still = await check(url, key);
    assert.equal(still.status, 200);
    assert.equal(still.source, 'store');
  } finally {
    await server.close();
  }
});

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** A delivery signed as Polar signs it (Standard Webhooks, the base64 secret). */
function signedHeaders(id, body, ts = Math.floor(Date.now() / 1000)) {
  const key = Buffer.from(SECRET.slice('whsec_'.length), 'base64');
  const sig = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
  return { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${sig}` };
}

/** A request straight to the handler (no server): `{status, source, headers, body}`. */
async function direct(relay, path, { method = 'POST', headers = { 'content-type': 'application/json' }, body } = {}) {
  const r = await relay.fetch(new Request(`http://relay.test${path}`, { method, headers, body }), undefined, { clientIp: '127.0.0.1' });
  return { status: r.status, source: r.headers.get('polar-license-source'), headers: r.headers, body: await r.text() };
}

const validateBody = (key) => JSON.stringify({ key, organization_id: ORG });

test("node: the roster in memory (store.roster, no Durable Object): a guess is the relay's 429 at no cost, a key of the organization Polar's answer", async () => {
  const known = newKey();
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', store: { roster: true, firstSeenShare: 0 } });
  // ready() sets the roster's reads off (then each request, and a timer for the core's next).
  await relay.ready();
  const roster = async () => JSON.parse((await direct(relay, '/healthz', { method: 'GET', headers: {} })).body).roster;
  const deadline = Date.now() + 20_000;
  let seen = await roster();
  while (seen?.state !== 'current' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    seen = await roster();
  }
  assert.equal(seen?.state, 'current', JSON.stringify(seen));
  const calls = polar.requestCount();
  const guess = await direct(relay, VALIDATE, { body: validateBody('RSTORE-GUESSED-0000-4A5B6C') });
  assert.deepEqual([guess.status, guess.source], [429, 'relay'], guess.body);
  assert.match(guess.headers.get('retry-after') ?? '', /^\d+$/);
  assert.equal(polar.requestCount(), calls, 'no share: the guess cost no call');
  const granted = await direct(relay, VALIDATE, { body: validateBody(known) });
  assert.deepEqual([granted.status, granted.source], [200, 'polar'], granted.body);
});

// A relay a node process is done with: `close()` stops its timer and its reads of Polar (the
// roster's listing, retried while Polar fails), so nothing polls Polar after it; the run under
// way ends first. Requests are still answered. The wait after close() is twice the gap seen
// between two reads while open (5 s when measured), past the next read's time.
test('node: close() stops the relay\'s reads of Polar for good; requests are still answered', async (t) => {
  const at = [];
  const failing = async () => {
    at.push(Date.now());
    return new Response('{"detail":"down"}', { status: 503, headers: { 'content-type': 'application/json' } });
  };
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', store: { roster: true }, fetch: failing });
  await relay.ready();
  // The roster's listing, failing, is tried again and again while the relay is open.
  const deadline = Date.now() + 30_000;
  while (at.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(at.length >= 2, `the roster's reads while open: ${at.length}`);
  await relay.close();
  const closedAt = at.length;
  const gap = at[closedAt - 1] - at[closedAt - 2];
  t.diagnostic(`reads at +${at.map((x) => x - at[0]).join(', +')} ms; waiting ${2 * gap} ms after close()`);
  await new Promise((r) => setTimeout(r, 2 * gap));
  assert.equal(at.length, closedAt, 'no read of Polar after close()');
  const health = await direct(relay, '/healthz', { method: 'GET', headers: {} });
  assert.equal(health.status, 200, health.body);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(at.length, closedAt, 'nor after a request');
});

test('node: webhookSilence: /healthz turns to warning and the relay warns once per period, until a webhook comes', async () => {
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', webhookSilence: 2, store: { webhookSecret: SECRET } });
  const health = async () => JSON.parse((await direct(relay, '/healthz', { method: 'GET', headers: {} })).body);
  const warnings = [];
  const warn = console.warn;
  console.warn = (line) => warnings.push(String(line));
  try {
    const first = await health();
    assert.deepEqual([first.status, first.webhooks.seconds_since_last, first.webhooks.silent], ['ok', null, false]);
    await new Promise((r) => setTimeout(r, 2_200));
    await direct(relay, '/nothing');
    await direct(relay, '/nothing');
    assert.equal(warnings.length, 1, `one warning per period: ${warnings}`);
    assert.match(warnings[0], /^polar-license relay: no webhook from Polar for \d+ s/);
    const silent = await health();
    assert.deepEqual([silent.status, silent.webhooks.silent], ['warning', true]);
    // A webhook that verifies ends the silence (an event that names nothing stored).
    const event = JSON.stringify({ type: 'customer.updated', timestamp: new Date().toISOString(), data: { id: 'cus-none' } });
    const delivered = await direct(relay, '/v1/webhooks/polar', { headers: signedHeaders('evt-silence', event), body: event });
    assert.equal(delivered.status, 200, delivered.body);
    const heard = await health();
    assert.deepEqual([heard.status, heard.webhooks.silent, typeof heard.webhooks.seconds_since_last], ['ok', false, 'number']);
  } finally {
    console.warn = warn;
  }
});

/** A Map as the storage, whose next `failures` saves reject. */
function flakyStorage() {
  const saved = new Map();
  const storage = {
    failures: 0,
    saves: 0,
    saved,
    async load() {
      return [...saved.values()];
    },
    async save(items) {
      storage.saves++;
      if (storage.failures > 0) {
        storage.failures--;
        throw new Error('the disk is full');
      }
      for (const item of items) {
        if (item.op === 'budget') {
          saved.set('b:budget', item);
          continue;
        }
        const key = `${item.op === 'put' || item.op === 'delete' ? 'e' : 'w'}:${item.id}`;
        if (item.op === 'put' || item.op === 'webhook') saved.set(key, item);
        else saved.delete(key);
      }
    },
  };
  return storage;
}

test('node: a save that fails once poisons nothing, and a webhook is acknowledged only once saved', async () => {
  const storage = flakyStorage();
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', store: { webhookSecret: SECRET }, storage });
  const key = newKey();
  storage.failures = 1;
  const first = await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(first.status, 200, 'the answer is passed on; its save is tried again with the next');
  assert.equal(first.source, 'polar');
  const second = await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(second.status, 200, second.body);
  assert.equal(second.source, 'store');
  assert.ok([...storage.saved.keys()].some((k) => k.startsWith('e:')), 'the first answer was saved after all');
  const third = await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(third.status, 200, 'no later request is poisoned');

  // A revocation whose save fails is not acknowledged (Polar delivers it again); the delivery
  // again is acknowledged only once its change is saved.
  const id = JSON.parse(first.body).id;
  const now = new Date().toISOString();
  const event = JSON.stringify({ type: 'benefit_grant.revoked', timestamp: now, data: { modified_at: now, customer_id: 'c', benefit: { type: 'license_keys' }, properties: { license_key_id: id } } });
  storage.failures = 1;
  const failed = await direct(relay, '/v1/webhooks/polar', { headers: signedHeaders('evt-save', event), body: event });
  assert.equal(failed.status, 500, failed.body);
  assert.ok(!storage.saved.has('w:evt-save'));
  const again = await direct(relay, '/v1/webhooks/polar', { headers: signedHeaders('evt-save', event), body: event });
  assert.equal(again.status, 200, again.body);
  assert.ok(storage.saved.has('w:evt-save'), 'the webhook id saved before its 2xx');
  assert.ok([...storage.saved.values()].some((item) => item.op === 'put' && item.entry.mark === 'Revoked'), 'the revocation saved before its 2xx');
  const refused = await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(refused.status, 404);
  assert.equal(refused.source, 'store');
});

test("node: a key's late revocation refuses after a newer customer event, also once the relay restarts (the core's rule)", async () => {
  const storage = flakyStorage();
  const options = { accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', store: { webhookSecret: SECRET }, storage };
  const relay = relayPkg.createRelay(options);
  const key = newKey();
  const first = await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(first.status, 200, first.body);
  const { id, customer_id: customer } = JSON.parse(first.body);
  const at = (secondsAgo) => new Date(Date.now() - secondsAgo * 1000).toISOString();
  // Delivered out of order: the customer's subscription canceled (newer) first.
  const purchase = JSON.stringify({ type: 'subscription.canceled', timestamp: at(60), data: { modified_at: at(60), customer_id: customer, status: 'canceled' } });
  const p = await direct(relay, '/v1/webhooks/polar', { headers: signedHeaders('evt-order-purchase', purchase), body: purchase });
  assert.equal(p.status, 200, p.body);
  // A restart: a new relay from what was saved, then the key's older revocation.
  const restarted = relayPkg.createRelay(options);
  const revoke = JSON.stringify({ type: 'benefit_grant.revoked', timestamp: at(120), data: { modified_at: at(120), customer_id: customer, benefit: { type: 'license_keys' }, properties: { license_key_id: id } } });
  const r = await direct(restarted, '/v1/webhooks/polar', { headers: signedHeaders('evt-order-revoke', revoke), body: revoke });
  assert.equal(r.status, 200, r.body);
  const calls = polar.requestCount();
  const refused = await direct(restarted, VALIDATE, { body: validateBody(key) });
  assert.equal(refused.status, 404, refused.body);
  assert.equal(refused.source, 'store');
  assert.equal(polar.requestCount(), calls, 'refused with no call to Polar');
});

test('node: what the store saves holds no license key and no email', async () => {
  const storage = flakyStorage();
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', store: {}, storage });
  const key = `RSTORE-${Math.random().toString(16).slice(2, 10).toUpperCase()}-8K2M4P`;
  const email = 'saved.customer.never@example.org';
  polar.addKey({ key, customer_email: email });
  const first = await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(first.status, 200, first.body);
  assert.ok(first.body.includes(email), "Polar's own answer passed on as it is");
  const second = await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(second.source, 'store');
  assert.equal(JSON.parse(second.body).key, key, "the client's key put back");
  assert.equal(JSON.parse(second.body).customer.email, null);
  const text = JSON.stringify([...storage.saved.values()]);
  assert.ok(text.includes('8K2M4P'), 'the display key is kept');
  assert.ok(!text.includes(key), 'the whole key was saved');
  assert.ok(!text.includes(email), 'the email was saved');
});

test('node: corsOrigins narrows the CORS grant to the pages named, as --cors-origin does', async () => {
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', store: {}, corsOrigins: ['https://app.example.com'] });
  const key = newKey();
  const ask = (origin, method = 'POST') =>
    direct(relay, VALIDATE, { method, headers: { 'content-type': 'application/json', ...(origin ? { origin } : {}) }, body: method === 'POST' ? validateBody(key) : undefined });
  for (const [method, source] of [['POST', 'polar'], ['POST', 'store'], ['OPTIONS', 'polar']]) {
    const named = await ask('https://app.example.com', method);
    assert.equal(named.source, source, `${method}: ${named.body}`);
    assert.equal(named.headers.get('access-control-allow-origin'), 'https://app.example.com', method);
    assert.equal(named.headers.get('vary'), 'origin');
  }
  for (const origin of ['https://evil.example', null]) {
    const other = await ask(origin);
    assert.equal(other.status, 200);
    assert.equal(other.headers.get('access-control-allow-origin'), null, `${origin}`);
  }
  const bad = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, corsOrigins: ['https://app.example.com/path'] });
  await assert.rejects(bad.ready(), /cors_origins/);
});

test("node: server 'sandbox' defaults the store's budget to 100, as natively", async () => {
  // The whole budget's split, so without the roster (on by default since issue #52, it gives
  // keys it does not know a tenth of it).
  let calls = 0;
  const fetchStub = async (url) => {
    calls++;
    assert.ok(url.startsWith('https://sandbox-api.polar.sh/'), url);
    return new Response('{"error":"ResourceNotFound","detail":"License key not found"}', { status: 404, headers: { 'content-type': 'application/json' } });
  };
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, server: 'sandbox', perIp: '1000/1000', perKey: '1000/1000', store: { roster: false }, fetch: fetchStub });
  const statuses = [];
  for (let i = 0; i < 80; i++) statuses.push((await direct(relay, VALIDATE, { body: validateBody(`SANDBOX-${i}-UNKNOWN`) })).status);
  assert.equal(calls, 75, 'a budget of 100, a quarter kept for activations');
  assert.deepEqual(statuses.slice(74, 77), [404, 429, 429]);
});

test('node: a new relay over the same saved storage remembers the budget spent and Polar\'s 429', async () => {
  let calls = 0;
  let answer = () => new Response('{"error":"ResourceNotFound","detail":"License key not found"}', { status: 404, headers: { 'content-type': 'application/json' } });
  const fetchStub = async () => {
    calls++;
    return answer();
  };
  const storage = flakyStorage();
  const options = { accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', perKey: '1000/1000', store: { budget: 10, budgetReserve: 4, roster: false }, storage, fetch: fetchStub };
  // A reserve of 4, so that one key's second activation is within its share of it (half the
  // reserve for a key alone in it, issue #62 item 3): what refuses it is Polar's Retry-After.
  /** Validates of new keys until one is refused: how many went to Polar. */
  const validatesUntilRefused = async (relay, tag) => {
    const before = calls;
    for (let i = 0; i < 20; i++) {
      const r = await direct(relay, VALIDATE, { body: validateBody(`BUDGET-${tag}-${i}-UNKNOWN`) });
      if (r.status === 429) {
        assert.equal(calls - before, i, 'the refusal made no call');
        return i;
      }
      assert.equal(r.status, 404, r.body);
    }
    assert.fail('never refused');
  };
  const first = relayPkg.createRelay(options);
  for (let i = 0; i < 5; i++) assert.equal((await direct(first, VALIDATE, { body: validateBody(`BUDGET-OLD-${i}-UNKNOWN`) })).status, 404);
  assert.equal(calls, 5);
  // Saved as `AT BLOCKED_MS AGO:CALLS …`: the 5 calls of this second.
  const saved = storage.saved.get('b:budget');
  assert.match(saved?.state ?? '', /^\d+ 0 0:5$/, JSON.stringify(saved));
  // A restart (a Durable Object evicted and created again): the validates' share (6) less 5.
  const second = relayPkg.createRelay(options);
  assert.equal(await validatesUntilRefused(second, 'a'), 1);
  assert.equal(calls, 6, 'never more than the budget within the minute');

  // Polar's 429 (Retry-After 30) on an activation: learned, and saved for the next relay.
  answer = () => new Response(null, { status: 429, headers: { 'retry-after': '30' } });
  const activate = JSON.stringify({ key: 'BUDGET-ACTIVATE-UNKNOWN', organization_id: ORG, label: 'laptop' });
  const limited = await direct(second, '/v1/customer-portal/license-keys/activate', { body: activate });
  assert.equal(limited.status, 429);
  assert.equal(calls, 7);
  const blocked = await direct(second, '/v1/customer-portal/license-keys/activate', { body: activate });
  assert.equal(blocked.status, 429);
  const retry = Number(blocked.headers.get('retry-after'));
  assert.ok(retry > 20 && retry <= 30, `the relay's own retry-after ${retry}`);
  const third = relayPkg.createRelay(options);
  const still = await direct(third, '/v1/customer-portal/license-keys/activate', { body: activate });
  assert.equal(still.status, 429);
  const left = Number(still.headers.get('retry-after'));
  assert.ok(left > 20 && left <= 30, `retry-after ${left} after the restart`);
  assert.equal(calls, 7, 'Polar not asked during its Retry-After, across the restart');
});

test("durableStorage is the object's own calls: the core names each, at most 128 keys (store/saves/writing.rs)", async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const fake = fakeDurable();
  const storage = durableStorage(fake);
  const keys = Array.from({ length: 100 }, (_, i) => `i:t:${String(i).padStart(12, '0')}|x`);
  await storage.put(Object.fromEntries([...keys.map((k) => [k, 1]), ['b:budget', '1000 0 0:2']]));
  assert.equal(fake.kv.size, 101);
  assert.equal((await storage.get([...keys, 'b:budget', 'n:none'])).size, 101);
  const page = await storage.list({ prefix: 'i:t:', after: keys[9], limit: 5 });
  assert.deepEqual([...page.keys()], keys.slice(10, 15));
  await storage.delete(keys.slice(0, 60));
  assert.deepEqual([...(await storage.list({ prefix: 'i:' })).keys()], keys.slice(60));
  // More than a call takes is the caller's error, as the object's own (the relay never hands it).
  await assert.rejects(storage.put(Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, i]))));
});

/** A Durable Object's storage API over a Map (keys in order, as Cloudflare lists them), its
 * reads counted: `keys` read and `lists` made without a prefix (a read of everything). */
function fakeDurable(kv = new Map()) {
  // The reconcile's pages of the stored keys' index rows (`i:l:`, bounded) counted apart.
  const reads = { keys: 0, whole: 0, calls: 0, pages: 0, rows: 0, largest: 0 };
  const sorted = () => [...kv.keys()].sort();
  return {
    kv,
    reads,
    async get(keys) {
      reads.calls++;
      assert.ok(!Array.isArray(keys) || keys.length <= 128, 'at most 128 keys a call');
      if (!Array.isArray(keys)) {
        reads.keys++;
        return kv.get(keys);
      }
      const out = new Map(keys.filter((k) => kv.has(k)).map((k) => [k, kv.get(k)]));
      reads.keys += out.size;
      return out;
    },
    async list({ prefix = '', limit = Infinity, startAfter } = {}) {
      reads.calls++;
      if (prefix === '') reads.whole++;
      const out = new Map();
      for (const k of sorted()) {
        if (out.size >= limit) break;
        if (k.startsWith(prefix) && (startAfter === undefined || k > startAfter)) out.set(k, kv.get(k));
      }
      if (prefix === 'i:l:') {
        reads.pages++;
        reads.rows += out.size;
        reads.largest = Math.max(reads.largest, limit);
      } else reads.keys += out.size;
      return out;
    },
    async put(entries) {
      assert.ok(Object.keys(entries).length <= 128, 'at most 128 keys a call');
      for (const [k, v] of Object.entries(entries)) kv.set(k, structuredClone(v));
    },
    async delete(keys) {
      assert.ok(keys.length <= 128, 'at most 128 keys a call');
      for (const k of keys) kv.delete(k);
    },
  };
}

/** A signed revocation of the key Polar answered `validated` for (`forged`: a bad signature). */
async function revoke(relay, validated, webhookId, forged = false) {
  const { id, customer_id: customer } = JSON.parse(validated.body);
  const now = new Date().toISOString();
  const event = JSON.stringify({ type: 'benefit_grant.revoked', timestamp: now, data: { modified_at: now, customer_id: customer, benefit: { type: 'license_keys' }, properties: { license_key_id: id } } });
  const headers = { ...signedHeaders(webhookId, event), ...(forged ? { 'webhook-signature': `v1,${'A'.repeat(43)}=` } : {}) };
  const r = await direct(relay, '/v1/webhooks/polar', { headers, body: event });
  assert.equal(r.status, forged ? 401 : 200, r.body);
}

test("the Durable Object pieces' store is the core's rule (host::StoreHome): the object keeps one though none is given, a Worker without the binding none though one is", async () => {
  const { bindDurable } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const { relayStore, relayWorker } = bindDurable(relayPkg.createRelay);
  const base = { accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', clientIp: () => '127.0.0.1' };
  const sources = async (handler, env, ctx) => {
    const key = newKey();
    const out = [];
    for (let i = 0; i < 2; i++) {
      const r = await handler.fetch(new Request(`http://relay.test${VALIDATE}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: validateBody(key) }), env, ctx);
      assert.equal(r.status, 200, await r.clone().text());
      out.push(r.headers.get('polar-license-source'));
      await r.text();
    }
    return out;
  };
  const PolarRelayStore = relayStore(() => base);
  const fake = fakeDurable();
  const object = new PolarRelayStore({ storage: fake, waitUntil: () => {} }, {});
  try {
    assert.deepEqual(await sources(object), ['polar', 'store'], 'no store option: the object keeps one');
    assert.ok(fake.kv.size > 0, "the object's storage holds the store");
  } finally {
    await object.relay.close();
  }
  const warn = console.warn;
  const warned = [];
  console.warn = (...a) => warned.push(a.join(' '));
  const worker = relayWorker(() => ({ ...base, store: { freshFor: 600 } }));
  try {
    assert.deepEqual(await sources(worker, {}, {}), ['polar', 'polar'], 'no binding: no store, though the options give one');
  } finally {
    console.warn = warn;
  }
  assert.ok(warned.some((w) => w.includes('no Durable Object binding POLAR_RELAY_STORE')), `${warned}`);
});

test("createRelay: a storage without the calls its kind needs is named at ready() with the core's wording (host::storage_calls)", async () => {
  const noop = async () => {};
  for (const [storage, wants] of [
    [{ load: noop }, 'storage: must have load, save'],
    [{ paged: true, get: noop, list: noop, put: noop }, 'storage: must have get, list, delete'],
    [{ paged: true, get: noop, write: noop }, 'storage: must have get, list, write'],
  ]) {
    const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, store: {}, storage });
    await assert.rejects(relay.ready(), (e) => e.message.includes(wants), wants);
    await relay.close();
  }
  // The calls its kind needs, and nothing is refused.
  const ok = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, store: {}, storage: { load: async () => [], save: noop } });
  await ok.ready();
  await ok.close();
});

test("node: a Durable Object's store is read only for checks within the per-IP limit: a flood of unknown keys past it costs no storage read", async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const fake = fakeDurable();
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1/2', perKey: '1000/1000', store: {}, storage: durableStorage(fake) });
  await direct(relay, '/nothing');
  const before = fake.reads.calls;
  const statuses = [];
  for (let i = 0; i < 20; i++) statuses.push((await direct(relay, VALIDATE, { body: validateBody(newKey()) })).status);
  const limited = statuses.filter((s) => s === 429).length;
  const asked = statuses.length - limited;
  assert.ok(limited >= 10, `${limited} of 20 over the per-IP limit: ${statuses}`);
  // An unknown key within the limit reads its entry and its key's row (twice at most: before
  // the core answers, and again when Polar's answer comes); one past it reads nothing.
  const reads = fake.reads.calls - before;
  assert.ok(reads <= asked * 4, `${reads} storage reads for ${asked} checks within the limit (${limited} over it)`);
});

test("node: a Durable Object's store: an entry read while another request saves it is read again, never cached as absent", async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const fake = fakeDurable();
  // The next read of entries answers with what the storage held when it began, once let go.
  let hold = null;
  const get = fake.get.bind(fake);
  fake.get = async (keys) => {
    const then = await get(keys);
    if (hold && Array.isArray(keys)) {
      const wait = hold;
      hold = null;
      await wait;
    }
    return then;
  };
  // A cache of one: an entry leaves memory once another is saved (then only the storage knows it).
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', perKey: '1000/1000', store: { cacheEntries: 0 }, storage: durableStorage(fake) });
  await direct(relay, '/nothing');
  const key = newKey();
  let release;
  hold = new Promise((r) => (release = r));
  const calls = polar.requestCount();
  // A's read of the entry begins (nothing stored) and is held; B asks Polar and saves.
  const a = direct(relay, VALIDATE, { body: validateBody(key) });
  while (hold) await new Promise((r) => setTimeout(r, 5));
  const b = await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(b.source, 'polar', b.body);
  // Another key's check: B's entry leaves the cache (of one).
  assert.equal((await direct(relay, VALIDATE, { body: validateBody(newKey()) })).source, 'polar');
  release();
  const answered = await a;
  assert.equal(answered.status, 200, answered.body);
  assert.equal(answered.source, 'store', 'A reads the entry B saved, with no call of its own');
  assert.equal(polar.requestCount() - calls, 2, "B's call and the other key's");
});

test("node: a Durable Object's store is read per key: a revocation refuses entries out of memory, and a restart reads no entry", async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const fake = fakeDurable();
  const options = { accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', perKey: '1000/1000', store: { webhookSecret: SECRET, cacheEntries: 4 } };
  const relay = relayPkg.createRelay({ ...options, storage: durableStorage(fake) });
  const keys = Array.from({ length: 12 }, newKey);
  const first = [];
  for (const key of keys) {
    first.push(await direct(relay, VALIDATE, { body: validateBody(key) }));
    assert.equal(first.at(-1).source, 'polar', first.at(-1).body);
  }
  assert.equal(fake.kv.get('n:entries'), 12);
  // Key 0's entry and row left the cache of 4 long ago: read back from the storage.
  let calls = polar.requestCount();
  assert.equal((await direct(relay, VALIDATE, { body: validateBody(keys[0]) })).source, 'store');
  for (const key of keys.slice(1, 8)) await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(polar.requestCount(), calls, 'all answered from the store');
  // Key 1's revocation: its entry is out of memory; the webhook reads it through its index row.
  await revoke(relay, first[1], 'evt-paged-1');
  const refused = await direct(relay, VALIDATE, { body: validateBody(keys[1]) });
  assert.equal(refused.status, 404, refused.body);
  assert.equal(refused.source, 'store');
  assert.equal(polar.requestCount(), calls, 'refused with no call');
  assert.ok(fake.reads.whole === 0, 'nothing read the storage whole');
  // A forged webhook reads nothing (key 9's row was never read; its entry left the cache).
  const read = fake.reads.keys;
  await revoke(relay, first[9], 'evt-paged-forged', true);
  assert.equal(fake.reads.keys, read, 'a webhook whose signature does not verify read the storage');
  assert.equal((await direct(relay, VALIDATE, { body: validateBody(keys[9]) })).status, 200);

  // A restart: the webhook ids, the budget and the count are read, then each check its entry.
  Object.assign(fake.reads, { keys: 0, pages: 0, rows: 0, largest: 0 });
  const restarted = relayPkg.createRelay({ ...options, storage: durableStorage(fake) });
  const again = await direct(restarted, VALIDATE, { body: validateBody(keys[5]) });
  assert.equal(again.source, 'store', again.body);
  // 9: one more than before the store's byte cap (issue #62), whose count of bytes (`n:bytes`)
  // is read at start with the count of entries.
  assert.ok(fake.reads.keys <= 9, `${fake.reads.keys} keys read at start and for the first check (of ${fake.kv.size})`);
  assert.equal((await direct(restarted, VALIDATE, { body: validateBody(keys[1]) })).status, 404, 'the revocation kept');
  assert.equal(fake.reads.whole, 0);
  // Between requests the reconcile learns the stored keys (as a native start reads them at
  // once): their index rows listed in bounded pages (12 entries: one page of at most 128).
  const reconciled = async () => JSON.parse((await direct(restarted, '/healthz', { method: 'GET' })).body).reconcile?.keys;
  let known = await reconciled();
  for (let i = 0; i < 100 && known !== 12; i++) {
    await new Promise((r) => setTimeout(r, 20));
    known = await reconciled();
  }
  assert.equal(known, 12, 'the keys of the 12 stored grants known to the reconcile after the restart');
  assert.equal(fake.reads.pages, 1);
  assert.equal(fake.reads.rows, 12);
  assert.equal(fake.reads.largest, 128, 'a bounded page');

  // A store saved before index links (entries, webhook ids and the budget only) gets them at
  // its first start: a revocation then finds its entries.
  const old = fakeDurable(new Map([...fake.kv].filter(([k]) => /^[ewb]:/.test(k))));
  const upgraded = relayPkg.createRelay({ ...options, storage: durableStorage(old) });
  assert.equal((await direct(upgraded, VALIDATE, { body: validateBody(keys[3]) })).source, 'store');
  assert.equal(old.kv.get('n:entries'), 12);
  await revoke(upgraded, first[3], 'evt-paged-3');
  const upgradedRefusal = await direct(upgraded, VALIDATE, { body: validateBody(keys[3]) });
  assert.equal(upgradedRefusal.status, 404, upgradedRefusal.body);
  assert.equal(polar.requestCount(), calls);

  // A storage that cannot be read: a webhook is refused by the core (500, as natively when the
  // store fails; Polar delivers it again), never
  // acknowledged without the entries it narrows; once it reads, the delivery again is done.
  const flaky = fakeDurable(new Map(old.kv));
  const list = flaky.list;
  flaky.list = async (o) => (o?.prefix?.startsWith('i:') ? Promise.reject(new Error('storage down')) : list(o));
  const shaky = relayPkg.createRelay({ ...options, storage: durableStorage(flaky) });
  const { id, customer_id: customer } = JSON.parse(first[4].body);
  const now = new Date().toISOString();
  const event = JSON.stringify({ type: 'benefit_grant.revoked', timestamp: now, data: { modified_at: now, customer_id: customer, benefit: { type: 'license_keys' }, properties: { license_key_id: id } } });
  const down = await direct(shaky, '/v1/webhooks/polar', { headers: signedHeaders('evt-paged-down', event), body: event });
  assert.deepEqual([down.status, JSON.parse(down.body).detail], [500, 'the store failed'], down.body);
  assert.ok(!flaky.kv.has('w:evt-paged-down'), 'not remembered as done');
  flaky.list = list;
  const up = await direct(shaky, '/v1/webhooks/polar', { headers: signedHeaders('evt-paged-down', event), body: event });
  assert.equal(up.status, 200, up.body);
  assert.equal((await direct(shaky, VALIDATE, { body: validateBody(keys[4]) })).status, 404);
});

test("node: why a key stopped outlives the Durable Object (issue #68 item 4): a restart over the same storage still answers a paused key's denial with its detail", async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const fake = fakeDurable();
  const options = { accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', perKey: '1000/1000', store: { webhookSecret: SECRET, cacheEntries: 4 } };
  const relay = relayPkg.createRelay({ ...options, storage: durableStorage(fake) });
  const key = newKey();
  const first = await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(first.status, 200, first.body);
  const { id, customer_id: customer } = JSON.parse(first.body);
  const subscription = '9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a77';
  const at = new Date().toISOString();
  const hook = async (webhookId, event) => {
    const body = JSON.stringify(event);
    const r = await direct(relay, '/v1/webhooks/polar', { headers: signedHeaders(webhookId, body), body });
    assert.equal(r.status, 200, r.body);
  };
  // Its subscription paused, then its grant revoked (Polar's answer too); each event reads what
  // is kept with the entries it narrows (no storage call of its own: the round trips above).
  polar.updateKey(key, { status: 'revoked' });
  await hook('evt-stop-paused', { type: 'subscription.updated', timestamp: at, data: { id: subscription, customer_id: customer, modified_at: at, status: 'paused', paused_at: at, resumes_at: '2031-06-03T00:00:00Z' } });
  await hook('evt-stop-revoked', { type: 'benefit_grant.revoked', timestamp: at, data: { modified_at: at, customer_id: customer, subscription_id: subscription, benefit: { type: 'license_keys' }, properties: { license_key_id: id } } });
  const denied = await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(denied.status, 404, denied.body);
  const detail = denied.headers.get('polar-license-stopped');
  assert.match(detail ?? '', /^paused; at=\d+; until=1938211200$/);
  // The object evicted: a new relay over the same storage, its memory empty.
  const restarted = relayPkg.createRelay({ ...options, storage: durableStorage(fake) });
  const again = await direct(restarted, VALIDATE, { body: validateBody(key) });
  assert.equal(again.status, 404, again.body);
  assert.equal(again.headers.get('polar-license-stopped'), detail, 'the detail kept in the storage');
});

/** A Durable Object's storage that counts its calls (get, list, put, delete, the alarm's). */
function countedDurable(kv) {
  const fake = Object.assign(fakeDurable(kv), { getAlarm: async () => null, setAlarm: async () => {} });
  const calls = { get: 0, list: 0, put: 0, delete: 0, getAlarm: 0, setAlarm: 0 };
  for (const name of Object.keys(calls)) {
    const real = fake[name].bind(fake);
    fake[name] = (...args) => {
      calls[name]++;
      return real(...args);
    };
  }
  return Object.assign(fake, { calls });
}

/** The Durable Object round trips each route costs (the storage calls from the request until
 * its work after the answer is done), at most these (measured on main at f61fc3f: start 2 gets,
 * 2 lists and a put; a new key's check a get, a list and a put; issue #63 item 2 keeps them at
 * these or fewer). Roster and reconcile off: their reads are the
 * background's, not a request's. Start's figure counts the alarm's calls apart: with webhooks
 * on, the background wakes for the webhooks' silence (issue #63: an idle relay warns with no
 * request), so a start reads the alarm and sets it once (a day off by default); the requests
 * after it find it set (no call). */
const ROUND_TRIPS = {
  start: 5,
  'validate, a new key': 3,
  'validate, stored': 0,
  'validate, stored, after a restart': 2,
  // Issue #67: one more than measured at f61fc3f, the read of the key's seat pool (an
  // activation is refused while seats held fill what was sold, and counted in the pool); a
  // deactivation reads the pool with its key's entries, no call of its own.
  activate: 2,
  deactivate: 2,
  'webhook revocation': 2,
  'validate, revoked': 0,
  'unknown route': 0,
};

/** With usage on (`recordUsage`, issue #68 item 3): the same figures for every other route
 * (measured: none grows; with nothing waiting the usage machine sets no alarm), start 1 more
 * (the list of the buffers a last run left), a report of a new key 5 (its key's entry, row
 * and buffer in one get; the report kept, then its batch ingested, each a put; the alarm's get
 * and set), a retried one none (answered from the buffer in the cache). The reports' figures
 * count the storage calls apart from the alarm's; the alarm's reads and sets fall in whichever
 * report's window the background run does (timing: seen in the retried one's in CI, twice in
 * the new one's on a loaded machine), so the two reports' together are at most two pairs. */
const USAGE_ROUND_TRIPS = { start: ROUND_TRIPS.start + 1, 'usage report, a new key': 3, 'usage report, retried': 0 };

for (const usage of [false, true])
test(`node: a Durable Object's round trips per request stay at or below the measured figures${usage ? ' (usage on)' : ''}`, async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const options = { accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', perKey: '1000/1000', recordUsage: usage, store: { webhookSecret: SECRET, roster: false, reconcileEvery: 0 } };
  const fake = countedDurable();
  let relay = relayPkg.createRelay({ ...options, storage: durableStorage(fake) });
  const measured = {};
  const counted = async (name, run) => {
    const before = { ...fake.calls };
    const out = await run();
    await relay.alarm();
    const spent = Object.fromEntries(Object.entries(fake.calls).map(([k, v]) => [k, v - before[k]]).filter(([, v]) => v > 0));
    measured[name] = { total: Object.values(spent).reduce((a, b) => a + b, 0), ...spent };
    return out;
  };
  await counted('start', () => direct(relay, '/healthz', { method: 'GET', headers: {} }));
  const key = newKey();
  const first = await counted('validate, a new key', () => direct(relay, VALIDATE, { body: validateBody(key) }));
  assert.equal(first.source, 'polar', first.body);
  assert.equal((await counted('validate, stored', () => direct(relay, VALIDATE, { body: validateBody(key) }))).source, 'store');
  relay = relayPkg.createRelay({ ...options, storage: durableStorage(fake) });
  await relay.ready();
  await relay.alarm();
  assert.equal((await counted('validate, stored, after a restart', () => direct(relay, VALIDATE, { body: validateBody(key) }))).source, 'store');
  const other = newKey();
  const activated = await counted('activate', () => direct(relay, '/v1/customer-portal/license-keys/activate', { body: JSON.stringify({ key: other, organization_id: ORG, label: 'laptop' }) }));
  assert.equal(activated.status, 200, activated.body);
  const deactivate = JSON.stringify({ key: other, organization_id: ORG, activation_id: JSON.parse(activated.body).id });
  const deactivated = await counted('deactivate', () => direct(relay, '/v1/customer-portal/license-keys/deactivate', { body: deactivate }));
  assert.equal(deactivated.status, 204, deactivated.body);
  await counted('webhook revocation', () => revoke(relay, first, 'evt-round-trips'));
  const refused = await counted('validate, revoked', () => direct(relay, VALIDATE, { body: validateBody(key) }));
  assert.deepEqual([refused.status, refused.source], [404, 'store'], refused.body);
  assert.equal((await counted('unknown route', () => direct(relay, '/nothing'))).status, 404);
  if (usage) {
    const body = (id) => JSON.stringify({ key: other, organization_id: ORG, meter: 'tokens_used', units: 1, id });
    const kept = await counted('usage report, a new key', () => direct(relay, '/v1/usage/record', { body: body('rt-1') }));
    assert.equal(kept.status, 200, kept.body);
    const again = await counted('usage report, retried', () => direct(relay, '/v1/usage/record', { body: body('rt-1') }));
    assert.equal(JSON.parse(again.body).duplicate, true, again.body);
  }
  console.log(`Durable Object round trips per request${usage ? ' (usage on)' : ''}: ${JSON.stringify(measured)}`);
  const alarms = (m) => (m.getAlarm ?? 0) + (m.setAlarm ?? 0);
  for (const [name, most] of Object.entries({ ...ROUND_TRIPS, ...(usage ? USAGE_ROUND_TRIPS : {}) })) {
    const calls = measured[name].total - (name === 'start' || name.startsWith('usage report') ? alarms(measured[name]) : 0);
    assert.ok(calls <= most, `${name}: ${JSON.stringify(measured[name])} storage calls (the alarm's apart), at most ${most}`);
  }
  assert.ok(alarms(measured.start) <= 2, `start's alarm calls (the webhooks' silence): ${JSON.stringify(measured.start)}, at most a read and a set`);
  if (usage) {
    // The usage machine's alarm reads and sets land in whichever of the two reports' windows
    // its background run falls (timing): the two reports together at most two pairs.
    const both = alarms(measured['usage report, a new key']) + alarms(measured['usage report, retried']);
    assert.ok(both <= 4, `the usage reports' alarm calls: ${both}, at most 4`);
  }
});

// ---- workerd, with a Durable Object ---------------------------------------------------------

const WORKER = storeWorker(`perIp: '1000/1000',
  store: { webhookSecret: env.POLAR_WEBHOOK_SECRET },`);

async function workerd({ port, secret, storeDir, withStore = true, worker = WORKER, probe = VALIDATE }) {
  return relayUnderWorkerd({
    port,
    worker,
    polarUrl: polar.url,
    bindings: { POLAR_ACCESS_TOKEN: TOKEN, RELAY_SIGNING_KEY: SIGNING_KEY, POLAR_WEBHOOK_SECRET: secret },
    store: withStore ? { dir: storeDir, uniqueKey: 'polar-relay-store-test' } : undefined,
    probe,
  });
}

/**
 * A relay under workerd with its Durable Object's storage on a fresh disk, on a free port, and
 * its webhook endpoint on Polar from `endpointOf(base)`: `body(live, endpoint, options)` runs with
 * `live.host` the relay (a body that restarts it sets `live.host = await workerd(options)`);
 * then the relay is closed, the endpoint deleted and the disk removed.
 */
async function withStoredRelay(endpointOf, hostOptions, body) {
  const storeDir = await mkdtemp(join(tmpdir(), 'polar-license-do-'));
  const port = await freePort();
  const endpoint = await endpointOf(`http://127.0.0.1:${port}`);
  const options = { port, secret: endpoint.secret, storeDir, ...hostOptions };
  const live = { host: await workerd(options) };
  try {
    await body(live, endpoint, options);
  } finally {
    await live.host.close();
    await api(`/v1/webhooks/endpoints/${endpoint.id}`, 'DELETE');
    await rm(storeDir, { recursive: true, force: true });
  }
}

test('workerd: a Durable Object holds the store; a revocation arrives as a webhook; the store survives a restart', async () => {
  await withStoredRelay(endpointFor, {}, async (live, endpoint, options) => {
    await revokedThroughTheWebhook(live.host.url, endpoint.id);
    // /healthz knows the webhook came (and, below, still knows after a restart).
    const heard = async () => (await (await fetch(`${live.host.url}/healthz`)).json()).webhooks;
    const fresh = await heard();
    const recent = (w) => typeof w?.seconds_since_last === 'number' && w.seconds_since_last >= 0 && w.seconds_since_last < 120;
    assert.ok(recent(fresh), JSON.stringify(fresh));
    assert.equal(fresh.silent, false);
    const key = newKey();
    assert.equal((await check(live.host.url, key)).source, 'polar');
    await live.host.close();
    // The same disk, a new runtime: answered from the stored verdict, no call.
    live.host = await workerd(options);
    const restarted = await heard();
    assert.ok(recent(restarted), `the last webhook's time from the store: ${JSON.stringify(restarted)}`);
    const calls = polar.requestCount();
    const again = await check(live.host.url, key);
    assert.equal(again.status, 200, again.body);
    assert.equal(again.source, 'store');
    assert.ok(again.lease);
    assert.equal(polar.requestCount(), calls);
  });
});

// Issue #62: 10,000 `[` left the Durable Object answering 500 ("memory access out of bounds")
// to every later request. Now Polar's 400 for that body alone, and the store serves on.
test('workerd: a body nested 10,000 deep is refused alone; the Durable Object answers the next checks', async () => {
  await withStoredRelay(endpointFor, {}, async (live) => {
    const key = newKey();
    assert.equal((await check(live.host.url, key)).source, 'polar');
    for (const body of ['['.repeat(10_000), '{"a":'.repeat(10_000)]) {
      const r = await fetch(`${live.host.url}${VALIDATE}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      assert.equal(r.status, 400);
      assert.equal(await r.text(), '{"detail":"There was an error parsing the body"}');
      const again = await check(live.host.url, key);
      assert.equal(again.status, 200, again.body);
      assert.equal(again.source, 'store');
    }
  });
});

test('workerd: without the Durable Object binding, every check is forwarded and the relay says so', async () => {
  const storeDir = await mkdtemp(join(tmpdir(), 'polar-license-do-'));
  const port = await freePort();
  const host = await workerd({ port, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', storeDir, withStore: false });
  try {
    const key = newKey();
    assert.equal((await check(host.url, key)).source, 'polar');
    const second = await check(host.url, key);
    assert.equal(second.source, 'polar', 'no store: asked again');
    assert.ok(second.lease);
    const end = Date.now() + 5_000;
    while (!host.output().includes('no Durable Object binding POLAR_RELAY_STORE') && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(host.output(), /no Durable Object binding POLAR_RELAY_STORE: no verdict store/);
  } finally {
    await host.close();
    await rm(storeDir, { recursive: true, force: true });
  }
});

// Issue #68: with `signEntitlements` on, the values reader asked for a wake-up every 200 ms
// with nothing to read, so the Durable Object's alarm rang forever after the last request (an
// invocation billed each time, the object kept in memory). The object's alarm calls are counted
// (`GET /__alarms`, a route of the test's object).
const ALARMS_WORKER = storeWorker(`perIp: '1000/1000',
  perKey: '1000/1000',
  signEntitlements: true,
  store: { webhookSecret: env.POLAR_WEBHOOK_SECRET },`).replace(
  'export const PolarRelayStore = relayStore(optionsOf);',
  `const Store = relayStore(optionsOf);
let alarms = 0;
export class PolarRelayStore extends Store {
  async alarm() {
    alarms++;
    return super.alarm();
  }
  async fetch(request) {
    if (new URL(request.url).pathname !== '/__alarms') return super.fetch(request);
    return Response.json({ alarms });
  }
}`,
);

// Issue #63: the webhooks' silence is a step of the core's background machine, which the
// Durable Object's alarm runs: an idle relay on Workers warns with no request after its first
// (before, it warned only at its next request), as `relay serve` does on its own thread.
const SILENT_WORKER = storeWorker(`perIp: '1000/1000',
  webhookSilence: 2,
  store: { webhookSecret: env.POLAR_WEBHOOK_SECRET },`);

test("workerd: an idle relay warns that Polar's webhooks went silent from its Durable Object's alarm, with no request", async () => {
  await withStoredRelay(endpointFor, { worker: SILENT_WORKER }, async (live) => {
    const health = async () => (await (await fetch(`${live.host.url}/healthz`)).json()).webhooks;
    // The one request: it starts the relay (its silence counts from here).
    const first = await health();
    assert.equal(first.silent, false, JSON.stringify(first));
    const line = /polar-license relay: no webhook from Polar for \d+ s \(since the relay's start; the limit is 2 s\)/;
    const end = Date.now() + 15_000;
    while (!line.test(live.host.output()) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.match(live.host.output(), line, `the silence's warning in workerd's output with no request: ${live.host.output().slice(-2000)}`);
    const silent = await health();
    assert.equal(silent.silent, true, JSON.stringify(silent));
  });
});

// The values' own reads (a customer wanted, read, signed) are relay-values' rows on both hosts
// and the core's unit test (flow/background.rs): this suite's npm emulator has no grants route.
test("workerd: with signEntitlements on and nothing due, the Durable Object's alarm rings no more after the last request", async () => {
  await withStoredRelay(endpointFor, { worker: ALARMS_WORKER }, async (live, endpoint) => {
    const alarms = async () => (await (await fetch(`${live.host.url}/__alarms`)).json()).alarms;
    const key = newKey();
    assert.equal((await check(live.host.url, key)).source, 'polar');
    assert.equal((await check(live.host.url, key)).source, 'store');
    // A webhook (a request too): a revocation of another key.
    const other = newKey();
    assert.equal((await check(live.host.url, other)).source, 'polar');
    polar.updateKey(other, { status: 'revoked' });
    await waitDelivered(endpoint.id, 'benefit_grant.revoked');
    // The work the last request left may ring the alarm once; then nothing is due.
    await new Promise((r) => setTimeout(r, 300));
    const before = await alarms();
    await new Promise((r) => setTimeout(r, 1_500));
    const rang = (await alarms()) - before;
    console.log(`Durable Object alarms over 1.5 s idle with signEntitlements on: ${rang} (${before} before)`);
    assert.ok(rang <= 1, `the alarm rang ${rang} times in 1.5 s with nothing due`);
    assert.equal((await check(live.host.url, key)).source, 'store', 'the relay still answers');
  });
});

// A customer's values wanted (a check whose nonce asks for them) while Polar's values reads
// fail (this suite's npm emulator has no benefit-grants route: 404 each time): the core backs
// off, 5 s doubled at each failure in a row (crate::backoff, the native host's rule too), so
// over 21 s the Durable Object's alarm rings twice (at 5 and 15 s; the next at 35 s) and Polar
// is read 3 times (at 0, 5 and 15 s), not 4 rings and 5 reads (every 5 s). 21 s: the shortest
// window in which a read every 5 s rings twice more than the backoff (a loaded machine only
// delays the rings).
test("workerd: failing values reads back off: the Durable Object's alarm rings less and less", async () => {
  // No roster, no reconcile: the values reads alone set the alarm.
  const worker = ALARMS_WORKER.replace(
    'store: { webhookSecret: env.POLAR_WEBHOOK_SECRET },',
    'store: { webhookSecret: env.POLAR_WEBHOOK_SECRET, roster: false, reconcileEvery: 0 },',
  );
  assert.notEqual(worker, ALARMS_WORKER);
  await withStoredRelay(endpointFor, { worker }, async (live) => {
    const alarms = async () => (await (await fetch(`${live.host.url}/__alarms`)).json()).alarms;
    const failed = () => live.host.output().split('an entitlements read answered 404: again later').length - 1;
    const key = newKey();
    const readsBefore = failed();
    const asked = await fetch(`${live.host.url}${VALIDATE}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'polar-license-nonce': '00112233445566778899aabbccddeeff-ent-stop-facts' },
      body: JSON.stringify({ key, organization_id: ORG }),
    });
    assert.equal(asked.status, 200);
    const before = await alarms();
    await new Promise((r) => setTimeout(r, 21_000));
    const rang = (await alarms()) - before;
    const reads = failed() - readsBefore;
    console.log(`Durable Object alarms over 21 s of failing values reads: ${rang} (${before} before), ${reads} reads`);
    assert.ok(reads >= 1, live.host.output().slice(-2000));
    assert.ok(rang >= 1 && rang <= 2, `the alarm rang ${rang} times in 21 s of failing reads (5 s each: 4)`);
    assert.ok(reads <= 3, `Polar read ${reads} times in 21 s (5 s each: 5)`);
    assert.equal((await check(live.host.url, key)).source, 'store', 'the relay still answers');
  });
});

// `/healthz`'s `store.max_bytes` is the byte cap the store enforces (the core's clamp of the
// option: at least one entry of the largest size with its overhead, 120 KiB + 512), not the
// option as given; unset, the default 64 MiB. And a test-only option (`testOnlyBudgetSeconds`)
// says so in the Worker's log, as `relay serve` warns of its test-only variables.
const LEAST_CAP = 120 * 1024 + 512;
test("workerd: /healthz says the store's byte cap in force; a test-only option warns in the log", async () => {
  const rows = [
    { more: 'maxBytes: 1, testOnlyBudgetSeconds: 6,', cap: LEAST_CAP, warns: true },
    { more: '', cap: 64 * 1024 * 1024, warns: false },
  ];
  for (const { more, cap, warns } of rows) {
    const worker = storeWorker(`perIp: '1000/1000',
  store: { webhookSecret: env.POLAR_WEBHOOK_SECRET, ${more} },`);
    await withStoredRelay(endpointFor, { worker }, async (live) => {
      const key = newKey();
      assert.equal((await check(live.host.url, key)).source, 'polar');
      assert.equal((await check(live.host.url, key)).source, 'store', `${more}: the grant kept`);
      const { store } = await (await fetch(`${live.host.url}/healthz`)).json();
      assert.equal(store.max_bytes, cap, `${more}: ${JSON.stringify(store)}`);
      assert.ok(store.bytes > 1 && store.bytes <= cap, JSON.stringify(store));
      const warned = /a budget window of 6 s, not Polar's minute, for tests only/.test(live.host.output());
      assert.equal(warned, warns, live.host.output().slice(-2000));
    });
  }
});

// A store of at most CAPPED entries, a cache of one, and its storage read back whole
// (`GET /__storage`, a route of the test's object).
const CAPPED = 10;
const CAPPED_WORKER = storeWorker(`perIp: '1000/1000',
  perKey: '1000/1000',
  store: { maxEntries: ${CAPPED}, cacheEntries: 1 },`).replace(
  'export const PolarRelayStore = relayStore(optionsOf);',
  `const Store = relayStore(optionsOf);
export class PolarRelayStore extends Store {
  async fetch(request) {
    if (new URL(request.url).pathname !== '/__storage') return super.fetch(request);
    const all = await this.state.storage.list();
    return Response.json({ keys: [...all.keys()], count: all.get('n:entries') ?? null });
  }
}`,
);

test('workerd: past maxEntries the Durable Object\'s storage loses its oldest entries with their index links, across a restart too', async () => {
  const storeDir = await mkdtemp(join(tmpdir(), 'polar-license-do-'));
  const options = { port: await freePort(), secret: SECRET, storeDir, worker: CAPPED_WORKER };
  let host = await workerd(options);
  try {
    const keys = Array.from({ length: 3 * CAPPED }, () => newKey());
    for (const [i, key] of keys.entries()) {
      if (i === 2 * CAPPED) {
        // A restart: nothing in memory, the storage as it was. The last CAPPED answered in a
        // later second than the others (entries of one second are as old as each other).
        await host.close();
        host = await workerd(options);
        await new Promise((r) => setTimeout(r, 1050 - (Date.now() % 1000)));
      }
      const r = await check(host.url, key);
      assert.deepEqual([r.status, r.source], [200, 'polar'], r.body);
    }
    const stored = await (await fetch(`${host.url}/__storage`)).json();
    const entries = stored.keys.filter((k) => k.startsWith('e:')).map((k) => k.slice(2));
    assert.equal(entries.length, CAPPED, `entries in the storage: ${entries.length}`);
    assert.equal(stored.count, CAPPED, 'n:entries');
    // Every index link names an entry stored (none left behind by an eviction): four each.
    const links = stored.keys.filter((k) => k.startsWith('i:'));
    assert.deepEqual(links.filter((k) => !entries.includes(k.split('|').at(-1))), []);
    assert.equal(links.length, 4 * CAPPED);
    // The newest stayed (answered from the store), the oldest went (Polar asked again).
    const calls = polar.requestCount();
    for (const key of keys.slice(-CAPPED)) assert.equal((await check(host.url, key)).source, 'store');
    assert.equal(polar.requestCount(), calls);
    assert.equal((await check(host.url, keys[0])).source, 'polar');
  } finally {
    await host.close();
    await rm(storeDir, { recursive: true, force: true });
  }
});

// The store's object with its storage reads counted (`GET /__reads`: the keys read, the
// reconcile's pages of index rows `i:l:` apart: how many, their rows, the largest, and whether
// one was listed before the first check read its entry), and a route that writes `n` entries
// straight into its storage as the relay lays them out (`POST /__seed?n=`: copies of the stored
// entry, each with its own id, key, license key id (a UUID) and customer, and their index
// links, the time row's included). `/__up` is answered by the Worker itself: the object starts with the first check.
const COUNTED_WORKER = WORKER.replace(
  'export const PolarRelayStore = relayStore(optionsOf);',
  `const Store = relayStore(optionsOf);
const hex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
export class PolarRelayStore extends Store {
  constructor(state, env) {
    const reads = { keys: 0, whole: 0, pages: 0, rows: 0, largest: 0, pageBeforeEntry: false, entryRead: false };
    const s = state.storage;
    const storage = {
      get: async (k) => {
        if ((Array.isArray(k) ? k : [k]).some((key) => key.startsWith('e:'))) reads.entryRead = true;
        const r = await s.get(k);
        reads.keys += Array.isArray(k) ? r.size : r === undefined ? 0 : 1;
        return r;
      },
      list: async (o = {}) => {
        if (!o.prefix) reads.whole++;
        const page = o.prefix === 'i:l:';
        if (page && !reads.entryRead) reads.pageBeforeEntry = true;
        const r = await s.list(o);
        if (!page) reads.keys += r.size;
        else {
          reads.pages++;
          reads.rows += r.size;
          reads.largest = Math.max(reads.largest, r.size);
        }
        return r;
      },
      put: (e) => s.put(e),
      delete: (k) => s.delete(k),
    };
    super({ storage }, env);
    this.reads = reads;
    this.raw = s;
  }
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/__reads') return Response.json(this.reads);
    if (url.pathname !== '/__seed') return super.fetch(request);
    const [template] = [...(await this.raw.list({ prefix: 'e:', limit: 1 })).values()];
    const n = Number(url.searchParams.get('n'));
    const writes = [];
    let batch = {};
    for (let i = 0; i < n; i++) {
      const id = hex(crypto.getRandomValues(new Uint8Array(32)));
      const uuid = [id.slice(0, 8), id.slice(8, 12), id.slice(12, 16), id.slice(16, 20), id.slice(20, 32)].join('-');
      const entry = { ...template, license_key_id: uuid, customer_id: 'cu-' + id.slice(16, 32), key_tag: 'k:' + id.slice(32) };
      batch['e:' + id] = entry;
      const tags = ['l:' + entry.license_key_id, 'c:' + entry.customer_id, entry.key_tag];
      for (const tag of tags) batch['i:' + tag + '|' + id] = 1;
      batch['i:t:' + String(entry.answered_at).padStart(12, '0') + '|' + id] = 1;
      if (Object.keys(batch).length >= 128 || i === n - 1) {
        writes.push(this.raw.put(batch));
        batch = {};
      }
    }
    writes.push(this.raw.put({ 'n:entries': ((await this.raw.get('n:entries')) ?? 0) + n }));
    await Promise.all(writes);
    return Response.json({ n });
  }
}`,
).replace('export default relayWorker(optionsOf);', `const relay = relayWorker(optionsOf);
export default { fetch: (request, env, ctx) => (new URL(request.url).pathname === '/__up' ? new Response('up') : relay.fetch(request, env, ctx)) };`);

/** Entries written into the store before the restart: 20,000 (about 9 s of writes here), or
 * POLAR_LICENSE_STORE_ENTRIES (100000: the figure in docs/performance.md, about 45 s). */
const SEEDED = Number(process.env.POLAR_LICENSE_STORE_ENTRIES ?? 20_000);

test(`workerd: a Durable Object holding ${SEEDED.toLocaleString('en')} entries restarts and answers its first check reading a few keys, not the store`, async () => {
  await withStoredRelay(endpointFor, { worker: COUNTED_WORKER, probe: '/__up' }, async (live, endpoint, options) => {
    const key = newKey();
    assert.equal((await check(live.host.url, key)).source, 'polar');
    const seeding = performance.now();
    for (let left = SEEDED; left > 0; left -= 10_000) {
      const r = await fetch(`${live.host.url}/__seed?n=${Math.min(left, 10_000)}`, { method: 'POST' });
      assert.equal(r.status, 200, await r.text());
    }
    const seeded = performance.now() - seeding;
    await live.host.close();

    // A new runtime on the same disk: the object starts with the first check.
    const started = performance.now();
    live.host = await workerd(options);
    const up = performance.now();
    const first = await check(live.host.url, key);
    const answered = performance.now();
    assert.equal(first.status, 200, first.body);
    assert.equal(first.source, 'store');
    assert.ok(first.lease);
    const reads = await (await fetch(`${live.host.url}/__reads`)).json();
    const ms = (a, b) => Math.round(b - a);
    console.log(
      `# ${SEEDED} entries (seeded in ${ms(0, seeded)} ms): first check ${ms(up, answered)} ms after the runtime was up, ` +
        `${ms(started, answered)} ms from its start; ${reads.keys} keys read`,
    );
    // The promise: start-up and the first check read what they touch, never the store.
    assert.equal(reads.whole, 0, 'nothing listed the storage whole');
    assert.ok(reads.keys <= 16, `${reads.keys} keys read at start and for the first check`);
    // Generous (a loaded 2-core machine): the figure measured is in docs/performance.md.
    assert.ok(answered - up < 10_000, `first check ${ms(up, answered)} ms`);
    assert.equal(reads.pageBeforeEntry, false, 'start-up listed no index row of the stored keys');
    // A check while the listing below goes on (it starts after the first answer).
    const during = performance.now();
    const second = await check(live.host.url, key);
    const duringMs = ms(during, performance.now());
    assert.equal(second.source, 'store', second.body);
    assert.ok(duringMs < 10_000, `a check during the listing: ${duringMs} ms`);

    // Then, between requests, the reconcile learns every stored key (as a native start reads
    // them at once), its index rows listed a bounded page at a time.
    const keysKnown = async () => (await (await fetch(`${live.host.url}/healthz`)).json()).reconcile?.keys;
    const deadline = Date.now() + 60_000 + SEEDED;
    let known = await keysKnown();
    while (known !== SEEDED + 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      known = await keysKnown();
    }
    const listed = performance.now();
    const pages = await (await fetch(`${live.host.url}/__reads`)).json();
    console.log(
      `# its ${SEEDED + 1} stored keys listed for the reconcile ${ms(answered, listed)} ms after the first check: ` +
        `${pages.pages} pages, ${pages.rows} rows, at most ${pages.largest} a page; a check meanwhile ${duringMs} ms`,
    );
    assert.equal(known, SEEDED + 1, 'every stored key known to the reconcile');
    assert.ok(pages.largest <= 128, `a page of ${pages.largest} rows`);
    assert.ok(pages.pages >= Math.ceil((SEEDED + 1) / 128), `${pages.pages} pages`);
    assert.equal(pages.whole, 0, 'nothing listed the storage whole');

    // A revocation arrives as a webhook and refuses the key from the store.
    const calls = polar.requestCount();
    polar.updateKey(key, { status: 'revoked' });
    await waitDelivered(endpoint.id, 'benefit_grant.revoked');
    const refused = await check(live.host.url, key);
    assert.equal(refused.status, 404, refused.body);
    assert.equal(refused.source, 'store');
    assert.equal(polar.requestCount(), calls, 'refused with no call to Polar');
  });
});

// Issue #52 under workerd: one forged post with an 8,000-byte `webhook-signature` of `v1,`
// entries and a 1 MiB body blocked the Durable Object for 84 s (an HMAC over the body per entry
// and per form of the secret, and the delivery verified twice: by the host's store reads and by
// the begin). Attackers post such deliveries (then eight entries each, within the limits) from
// addresses of their own while a client asks for a stored answer ten times: its median within
// 150 ms, 500 ms for eight-entry posts (the Durable Object runs one request at a time: every
// forged post is bounded work; the bounds and what was measured are below),
// every forged post refused (400 over the limits, 401 within them, 429 for an address past its
// failures), and Polar's signed delivery still applied after.
test('workerd: forged deliveries with huge headers and 1 MiB bodies never hold up a stored answer', async () => {
  const storeDir = await mkdtemp(join(tmpdir(), 'polar-license-do-'));
  const port = await freePort();
  const host = await workerd({ port, secret: SECRET, storeDir });
  const forged = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
  const head = '{"type":"benefit_grant.revoked","data":{"pad":"';
  const body = `${head}${'x'.repeat(1024 * 1024 - head.length - 3)}"}}`;
  assert.equal(body.length, 1024 * 1024);
  const median = (times) => [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
  const storedTimes = async (key) => {
    const times = [];
    for (let i = 0; i < 10; i++) {
      const asked = performance.now();
      const r = await check(host.url, key);
      times.push(performance.now() - asked);
      assert.equal(r.status, 200, r.body);
      assert.equal(r.source, 'store', `answer ${i}`);
      await new Promise((r) => setTimeout(r, 30));
    }
    return times;
  };
  // `attackers` loops posting `signature` from addresses of their own while `during` runs.
  const underAttack = async (attackers, signature, during) => {
    let stop = false;
    const statuses = {};
    const took = [];
    let n = 0;
    const loops = Array.from({ length: attackers }, async (_, a) => {
      while (!stop) {
        const sent = performance.now();
        const r = await fetch(`${host.url}/v1/webhooks/polar`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'cf-connecting-ip': `198.51.100.${(a * 60 + (n++ % 60)) % 250 + 1}`,
            'webhook-id': 'msg_forged',
            'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
            'webhook-signature': signature,
          },
          body,
        }).then(async (r) => (await r.arrayBuffer(), r.status), () => 0);
        took.push(performance.now() - sent);
        statuses[r] = (statuses[r] ?? 0) + 1;
      }
    });
    // Every attacker's first post under way.
    await new Promise((r) => setTimeout(r, 200));
    const out = await during();
    stop = true;
    await Promise.all(loops);
    return { out, statuses, took };
  };
  try {
    const key = newKey();
    assert.equal((await check(host.url, key)).source, 'polar');
    const quiet = await storedTimes(key);
    const huge = Array(Math.floor(8000 / (forged.length + 1))).fill(forged).join(' ');
    assert.ok(huge.length > 7900);
    const over = await underAttack(4, huge, () => storedTimes(key));
    const within = await underAttack(4, Array(8).fill(forged).join(' '), () => storedTimes(key));
    const ms = (t) => `${t.toFixed(1)} ms`;
    console.log(`stored answers under workerd: quiet median ${ms(median(quiet))}; under the issue's posts median ${ms(median(over.out))} (max ${ms(Math.max(...over.out))}), forged posts ${JSON.stringify(over.statuses)} answered in median ${ms(median(over.took))}; under eight-entry posts median ${ms(median(within.out))} (max ${ms(Math.max(...within.out))}), forged posts ${JSON.stringify(within.statuses)} answered in median ${ms(median(within.took))}`);
    // The issue asks 100 ms. Measured on a loaded 2-core machine (load 6.5): the issue's posts
    // 53-70 ms (quiet 8-18 ms: each post's 1 MiB is still read and copied into the wasm),
    // eight-entry posts from fresh addresses 111-177 ms (two HMACs over 1 MiB each in the
    // size-optimized wasm, and the Durable Object answers one request at a time). Held to
    // 150 ms and 500 ms (the old code: one post blocked the object for 84 s), every answer to
    // 2 s, every forged post answered within 2 s.
    // The issue's posts are refused on their head, their body never read (refuseUnread): the
    // runtime may close the connection under a body still being sent, which fetch reports as
    // an error (counted as 0 here: 0 to 15 of 140-150 posts a run). Measured on the same
    // machine, three runs each: with the body read first (the handler before refuseUnread) the
    // posts were answered in a median 43-46 ms, 70-75 of them a run, stored answers meanwhile
    // 29-35 ms; refused on the head 18-19 ms, 145-153 a run, stored answers 22-25 ms.
    for (const [what, attack, refused, bound, closed] of [['the issue\'s header', over, '400', 150, ['0']], ['eight entries', within, '401', 500, []]]) {
      assert.ok(median(attack.out) < bound, `${what}: ${attack.out}`);
      assert.ok(Math.max(...attack.out) < 2000, `${what}: ${attack.out}`);
      assert.ok(median(attack.took) < 2000, `${what}: forged posts answered in ${attack.took}`);
      assert.ok(attack.statuses[refused] > 0, `${what}: ${JSON.stringify(attack.statuses)}`);
      assert.deepEqual(Object.keys(attack.statuses).filter((s) => !['400', '401', '429', ...closed].includes(s)), [], JSON.stringify(attack.statuses));
    }
    // Polar's delivery, signed, from an address the attackers never used: applied.
    const event = JSON.stringify({ type: 'benefit_grant.updated', timestamp: '2026-01-01T00:00:00Z', data: { id: 'g', customer_id: 'c' } });
    const r = await fetch(`${host.url}/v1/webhooks/polar`, { method: 'POST', headers: { ...signedHeaders('msg_polar', event), 'cf-connecting-ip': '192.0.2.1' }, body: event });
    assert.equal(r.status, 200, await r.text());
  } finally {
    await host.close();
    await rm(storeDir, { recursive: true, force: true });
  }
});

// ---- Issue #52: a storage that refuses a value cannot turn the relay against its customers --

/** `fakeDurable` with a Durable Object's limit per value (128 KiB, as V8 serializes it: the
 * storage's own RangeError past it), and any key of `poisoned` refused the same way. */
async function cappedDurable(poisoned = new Set()) {
  const { serialize } = await import('node:v8');
  const fake = fakeDurable();
  const put = fake.put.bind(fake);
  fake.refused = [];
  fake.put = async (entries) => {
    for (const [k, v] of Object.entries(entries)) {
      const size = serialize(v).length;
      if (size > 131072 || poisoned.has(k)) {
        fake.refused.push(k);
        throw new RangeError(`Values cannot be larger than 131072 bytes. A value of size ${size} was provided.`);
      }
    }
    return put(entries);
  };
  return fake;
}

/** console.error's lines while `run` runs (still printed). */
async function errorsDuring(run) {
  const lines = [];
  const error = console.error;
  console.error = (...args) => {
    lines.push(args.join(' '));
    error(...args);
  };
  try {
    await run();
  } finally {
    console.error = error;
  }
  return lines;
}

/** A validate body of `key` whose answer is past 128 KiB: an activation made at Polar directly
 * with 50 metadata values of 500 characters JSON escapes (\u0001, six bytes each). */
async function largeValidateBody(key) {
  const meta = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`m${String(i).padStart(2, '0')}`, '\u0001'.repeat(500)]));
  const activated = await fetch(`${polar.url}/v1/customer-portal/license-keys/activate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key, organization_id: ORG, label: 'large', meta }),
  });
  assert.equal(activated.status, 200);
  const activation = (await activated.json()).id;
  return JSON.stringify({ key, organization_id: ORG, activation_id: activation });
}

test("node: Polar's answer past a Durable Object's 128 KiB a value (an activation's large escaped metadata) is answered and not stored; webhooks after it are done", async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const fake = await cappedDurable();
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', perKey: '1000/1000', store: { webhookSecret: SECRET }, storage: durableStorage(fake) });
  const key = newKey();
  const body = await largeValidateBody(key);
  const calls = polar.requestCount();
  for (let n = 1; n <= 3; n++) {
    const r = await direct(relay, VALIDATE, { body });
    assert.equal(r.status, 200, r.body.slice(0, 200));
    assert.ok(r.body.length > 131072, `Polar's answer is ${r.body.length} bytes`);
    assert.ok(r.headers.get('polar-license-lease'), 'a grant carries its lease');
    assert.equal(r.source, 'polar', 'not stored: each check is Polar\'s');
    assert.equal(polar.requestCount() - calls, n);
  }
  assert.deepEqual(fake.refused, [], 'the relay never handed the storage a value past its limit');
  // Webhooks after it are done (the save that holds them is not failed by the large answer).
  const other = newKey();
  const validated = await direct(relay, VALIDATE, { body: validateBody(other) });
  assert.equal(validated.source, 'polar');
  for (const id of ['evt-large-1', 'evt-large-2']) await revoke(relay, validated, id);
  assert.ok(fake.kv.has('w:evt-large-2'), 'the webhook id saved');
  assert.equal((await direct(relay, VALIDATE, { body: validateBody(other) })).status, 404);
});

test('node: a value the Durable Object refuses for good is dropped and logged once, never tried again with every later save (each webhook after it was answered 500)', async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const poisoned = new Set();
  const fake = await cappedDurable(poisoned);
  // The first entry written is refused, whatever its size.
  const put = fake.put;
  fake.put = async (entries) => {
    if (poisoned.size === 0) {
      const first = Object.keys(entries).find((k) => k.startsWith('e:'));
      if (first) poisoned.add(first);
    }
    return put(entries);
  };
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', perKey: '1000/1000', store: { webhookSecret: SECRET }, storage: durableStorage(fake) });
  const key = newKey();
  const other = newKey();
  let validated;
  const errors = await errorsDuring(async () => {
    const first = await direct(relay, VALIDATE, { body: validateBody(key) });
    assert.equal(first.status, 200, first.body);
    validated = await direct(relay, VALIDATE, { body: validateBody(other) });
    assert.equal(validated.status, 200, validated.body);
    // Webhooks after it: each done, its id saved.
    for (const id of ['evt-refused-1', 'evt-refused-2', 'evt-refused-3']) await revoke(relay, validated, id);
  });
  const [refusedKey] = [...poisoned];
  assert.ok(!fake.kv.has(refusedKey), 'the refused value is not stored');
  assert.ok(fake.kv.has('w:evt-refused-3'), 'later saves are written');
  const dropped = errors.filter((l) => /refused .* for good/.test(l));
  assert.equal(dropped.length, 1, `logged once: ${errors.join('\n')}`);
  assert.equal(fake.refused.filter((k) => k === refusedKey).length <= 2, true, `tried ${fake.refused.length} times`);
  // After a restart the storage is what it holds: the dropped entry's key is asked of Polar
  // again (nothing stored for it), the other key's revocation refuses.
  const restarted = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', perKey: '1000/1000', store: { webhookSecret: SECRET }, storage: durableStorage(fake) });
  assert.equal((await direct(restarted, VALIDATE, { body: validateBody(key) })).source, 'polar');
  assert.equal((await direct(restarted, VALIDATE, { body: validateBody(other) })).status, 404);
});

test("node: a Durable Object's read that fails never reads as absent: a stored revocation is not written over, the check is 503 with no call", async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const fake = fakeDurable();
  const options = { accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', perKey: '1000/1000', store: { webhookSecret: SECRET } };
  const relay = relayPkg.createRelay({ ...options, storage: durableStorage(fake) });
  const key = newKey();
  const validated = await direct(relay, VALIDATE, { body: validateBody(key) });
  assert.equal(validated.status, 200);
  // Revoked by Polar's webhook while Polar still grants the key.
  await revoke(relay, validated, 'evt-unread-1');
  const entries = () => [...fake.kv].filter(([k]) => k.startsWith('e:')).map(([, v]) => v.mark);
  assert.deepEqual(entries(), ['Revoked']);
  // A restart, and the storage's reads of entries throw.
  const restarted = relayPkg.createRelay({ ...options, storage: durableStorage(fake) });
  await direct(restarted, '/nothing');
  const get = fake.get.bind(fake);
  fake.get = async (keys) => (Array.isArray(keys) && keys.some((k) => k.startsWith('e:')) ? Promise.reject(new Error('storage down')) : get(keys));
  const calls = polar.requestCount();
  for (let i = 0; i < 2; i++) {
    const r = await direct(restarted, VALIDATE, { body: validateBody(key) });
    assert.deepEqual([r.status, r.headers.get('retry-after'), r.headers.get('polar-license-lease')], [503, '1', null], r.body);
  }
  assert.equal(polar.requestCount(), calls, 'Polar not asked');
  assert.deepEqual(entries(), ['Revoked'], 'the revocation is not written over');
  fake.get = get;
  const back = await direct(restarted, VALIDATE, { body: validateBody(key) });
  assert.equal(back.status, 404, back.body);
  assert.equal(polar.requestCount(), calls);
});

test("workerd: Polar's answer past a Durable Object's 128 KiB a value is answered and not stored (each check Polar's); a revocation after it is acknowledged and refuses", async () => {
  await withStoredRelay(endpointFor, {}, async (live, endpoint) => {
    const body = await largeValidateBody(newKey());
    for (let n = 0; n < 2; n++) {
      const r = await fetch(`${live.host.url}${VALIDATE}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const text = await r.text();
      assert.equal(r.status, 200, text.slice(0, 200));
      assert.ok(text.length > 131072, `Polar's answer is ${text.length} bytes`);
      assert.equal(r.headers.get('polar-license-source'), 'polar');
      assert.ok(r.headers.get('polar-license-lease'));
    }
    // Polar's webhooks after it are acknowledged (Polar disables an endpoint that fails them).
    await revokedThroughTheWebhook(live.host.url, endpoint.id);
  });
});

// Issue #52 (Polar as it is now, polar-license-api.md §15) on both npm hosts: a key revoked by
// Polar's webhook and granted again keeps its string; the re-grant's webhook
// (`benefit_grant.created`) has the key read by id, and Polar's read (never the webhook) ends the
// stored revocation: the next check is Polar's grant, at once, with the reconcile off and the
// revocation lasting an hour. The store is read per key with a cache of one entry (a Durable
// Object's): checks of other keys in between push the revoked key's entries out of memory, so
// the refetch's answer finds them only in the storage.

/** An endpoint in the emulator for the relay at `url` that hears grants too: its secret. */
const grantsEndpointFor = (url) => endpointFor(url, ['benefit_grant.created', 'benefit_grant.updated', 'benefit_grant.revoked']);

/** The scenario both hosts play, through the relay at `base` (its Polar endpoint `endpointId`);
 * with `quiet` the endpoint hears only the revocation, and the re-grant comes without a webhook. */
async function regrantedAfterTheWebhook(base, endpointId, { quiet = false } = {}) {
  const key = newKey();
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await check(base, key);
    if (r.status === 200 && r.source === 'store') break;
    assert.ok(Date.now() < deadline, `never stored: ${r.status} ${r.source} ${r.body}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  polar.updateKey(key, { status: 'revoked' });
  await waitDelivered(endpointId, 'benefit_grant.revoked');
  const refused = await check(base, key);
  assert.deepEqual([refused.status, refused.source], [404, 'store'], refused.body);
  // Other keys' checks: the revoked key's entries leave the cache of one.
  for (let n = 0; n < 3; n++) assert.equal((await check(base, newKey())).status, 200);
  polar.updateKey(key, { status: 'granted' });
  const regranted = Date.now();
  if (!quiet) await waitDelivered(endpointId, 'benefit_grant.created');
  let last;
  const end = Date.now() + (quiet ? 15_000 : 10_000);
  do {
    last = await check(base, key);
    if (last.status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  } while (Date.now() < end);
  assert.equal(last.status, 200, `still refused after the re-grant's webhook: ${last.status} ${last.source} ${last.body}`);
  // Polar's own verdict, leased: the webhook granted nothing by itself.
  assert.equal(last.source, 'polar');
  assert.ok(last.lease);
  console.log(`granted ${Date.now() - regranted} ms after the re-grant (${quiet ? 'no webhook, a reconcile every 2 s' : 'its webhook and refetch included'})`);
}

const REGRANT_STORE = `perIp: '1000/1000',
  perKey: '1000/1000',
  store: { webhookSecret: env.POLAR_WEBHOOK_SECRET, denialFor: 3600, reconcileEvery: 0, cacheEntries: 1 },`;

test("node: a key revoked by webhook and granted again is granted at once after the re-grant's webhook (a Durable Object's store, a cache of one)", async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const port = await freePort();
  const endpoint = await grantsEndpointFor(`http://127.0.0.1:${port}`);
  const server = await nodeRelay(port, {
    perKey: '1000/1000',
    store: { webhookSecret: endpoint.secret, denialFor: 3600, reconcileEvery: 0, cacheEntries: 1 },
    storage: durableStorage(Object.assign(fakeDurable(), { getAlarm: async () => null, setAlarm: async () => {} })),
  });
  try {
    await regrantedAfterTheWebhook(server.url, endpoint.id);
  } finally {
    await server.close();
    await api(`/v1/webhooks/endpoints/${endpoint.id}`, 'DELETE');
  }
});

test("workerd: a key revoked by webhook and granted again is granted at once after the re-grant's webhook (the Durable Object's cache of one)", async () => {
  await withStoredRelay(grantsEndpointFor, { worker: storeWorker(REGRANT_STORE) }, async (live, endpoint) => {
    await regrantedAfterTheWebhook(live.host.url, endpoint.id);
  });
});

// The same with no webhook for the re-grant (the endpoint hears only revocations), on Workers:
// the reconcile (every 2 s, no roster: no refetch by id either) asks Polar about the key whose
// revocation still refuses, its entries loaded from the Durable Object first (a cache of one),
// and Polar's read by id ends the revocation within about an interval (allowed 15 s on a loaded
// machine; printed), as natively (crates/relay/tests/reconcile.rs).
test('workerd: a key revoked by webhook and granted again with no webhook is granted within a reconcile interval (the Durable Object\'s cache of one)', async () => {
  const store = REGRANT_STORE.replace('reconcileEvery: 0', 'reconcileEvery: 2, roster: false');
  assert.notEqual(store, REGRANT_STORE);
  const revocationsOnly = (base) => endpointFor(base, ['benefit_grant.revoked']);
  await withStoredRelay(revocationsOnly, { worker: storeWorker(store) }, async (live, endpoint) => {
    await regrantedAfterTheWebhook(live.host.url, endpoint.id, { quiet: true });
  });
});

// Issue #52 under workerd: the handler read (and copied into the wasm) each webhook's body, up
// to 1 MiB, before the core could refuse it; the header caps and the per-address failure limit
// needed only the head. The core now decides those on the head (`refuseUnread`) before the
// body is read. Each post here sends its head and 1 KiB of a 1 MiB body, then nothing: an
// answer can only come from a relay that did not wait for the body. A forged post within the
// limits (only its HMAC can tell) gets none: it shows that the wait is real.

/** A webhook post to the relay on `port` from `ip` with `headers`, its body stalled after
 * 1 KiB of the 1 MiB it announces: `{status, head, text}` when answered within `ms`, else null. */
function stalledDelivery(port, ip, headers, ms) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    let timer = setTimeout(() => {
      socket.destroy();
      resolve(null);
    }, ms);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      const [head, text = ''] = got.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), head: head.toLowerCase(), text });
    };
    socket.on('connect', () => {
      const lines = ['POST /v1/webhooks/polar HTTP/1.1', `host: 127.0.0.1:${port}`, 'content-type: application/json', `content-length: ${1 << 20}`, `cf-connecting-ip: ${ip}`];
      for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n{"type":"benefit_grant.revoked","data":{"pad":"${'x'.repeat(1024)}`);
    });
    socket.on('data', (chunk) => {
      got += chunk;
      // The head, and a moment for the (short) body after it.
      if (got.includes('\r\n\r\n')) {
        clearTimeout(timer);
        timer = setTimeout(done, 100);
      }
    });
    socket.on('error', (e) => (got.includes('\r\n\r\n') ? done() : reject(e)));
  });
}

test('workerd: a delivery refused on its head (a signature header over its limits, an address over its failures) is answered with its body unread; a genuine delivery still works', async () => {
  const storeDir = await mkdtemp(join(tmpdir(), 'polar-license-do-'));
  const port = await freePort();
  const host = await workerd({ port, secret: SECRET, storeDir });
  const forged = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
  const ts = () => String(Math.floor(Date.now() / 1000));
  try {
    // Over the limits (nine entries): 400 with the core's own text, the body never sent.
    const over = await stalledDelivery(port, '192.0.2.90', { 'webhook-id': 'msg_over', 'webhook-timestamp': ts(), 'webhook-signature': Array(9).fill(forged).join(' ') }, 5_000);
    assert.ok(over, 'answered with its body unread');
    assert.equal(over.status, 400, over.text);
    assert.match(over.text, /the webhook-signature header holds more than 8 entries or 1024 bytes/);
    // Within the limits only the HMAC can tell: the relay waits for the body (no answer).
    const within = await stalledDelivery(port, '192.0.2.91', { 'webhook-id': 'msg_within', 'webhook-timestamp': ts(), 'webhook-signature': forged }, 2_000);
    assert.equal(within, null, `a delivery within the limits is read whole before it is answered: ${JSON.stringify(within)}`);
    // An address past its failures (ten forged posts, read whole and refused 401): 429 on the head.
    const event = JSON.stringify({ type: 'benefit_grant.updated', timestamp: '2026-01-01T00:00:00Z', data: { id: 'g', customer_id: 'c' } });
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${host.url}/v1/webhooks/polar`, { method: 'POST', headers: { ...signedHeaders(`msg_f${i}`, event), 'webhook-signature': forged, 'cf-connecting-ip': '192.0.2.92' }, body: event });
      assert.equal(r.status, 401, await r.text());
    }
    const limited = await stalledDelivery(port, '192.0.2.92', signedHeaders('msg_limited', event), 5_000);
    assert.ok(limited, 'answered with its body unread');
    assert.equal(limited.status, 429, limited.text);
    assert.match(limited.head, /\r\nretry-after: \d+/);
    // Polar's delivery, signed, from another address: applied.
    const r = await fetch(`${host.url}/v1/webhooks/polar`, { method: 'POST', headers: { ...signedHeaders('msg_polar', event), 'cf-connecting-ip': '192.0.2.1' }, body: event });
    assert.equal(r.status, 200, await r.text());
  } finally {
    await host.close();
    await rm(storeDir, { recursive: true, force: true });
  }
});

test("node: a Durable Object's store keeps when each activation was last seen: a relay started again over it lists the time", async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const fake = fakeDurable();
  const options = { accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', perKey: '1000/1000', store: { webhookSecret: SECRET } };
  const relay = relayPkg.createRelay({ ...options, storage: durableStorage(fake) });
  const key = newKey();
  const made = await direct(relay, '/v1/customer-portal/license-keys/activate', { body: JSON.stringify({ key, organization_id: ORG, label: 'laptop' }) });
  assert.equal(made.status, 200, made.body);
  const activation = JSON.parse(made.body).id;
  const seen = await direct(relay, VALIDATE, { body: JSON.stringify({ key, organization_id: ORG, activation_id: activation }) });
  assert.equal(seen.status, 200, seen.body);
  const list = async (r) => {
    const listed = await direct(r, '/v1/devices/list', { body: JSON.stringify({ key, organization_id: ORG }) });
    assert.equal(listed.status, 200, listed.body);
    return JSON.parse(listed.body).activations.find((a) => a.id === activation);
  };
  const before = (await list(relay)).last_seen;
  assert.match(before ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'seen: RFC 3339');
  // A restart (the Durable Object evicted and created again): its memory empty, the time kept.
  const restarted = relayPkg.createRelay({ ...options, storage: durableStorage(fake) });
  assert.equal(JSON.parse((await direct(restarted, '/healthz', { method: 'GET' })).body).last_seen.records, 0);
  assert.equal((await list(restarted)).last_seen, before);
});
