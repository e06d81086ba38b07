// Issue #37 on the npm package's relay: `polar-license/relay` with a verdict store, from the
// installed tarball, in node (a Map as its storage) and in Cloudflare's Workers runtime (the
// `workerd` npm package, offline) with a Durable Object holding the store on workerd's local
// disk. Each host: a validate asks Polar, the next is answered from the store (no call); a key
// revoked in Polar (the npm emulator, its webhooks delivered to the relay) is refused at the
// next check, from the store, with no call. Under workerd also: the store survives a restart of
// the runtime, and without the Durable Object binding the relay forwards every check and says so.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, runWorkerd } from './workerd.mjs';
import { CONSUMER, ORG, PACKAGE_DIR, mapStorage, pkg } from './emulator.mjs';

const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const VALIDATE = '/v1/customer-portal/license-keys/validate';

await writeFile(join(CONSUMER, 'relay-store-import.mjs'), "export * from 'polar-license/relay';\n");
const relayPkg = await import(pathToFileURL(join(CONSUMER, 'relay-store-import.mjs')).href);
const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);
const manifest = JSON.parse(await readFile(join(PACKAGE_DIR, 'package.json'), 'utf8'));

function keyText(kid) {
  const { d, x } = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const secret = Buffer.concat([Buffer.from(d, 'base64url'), Buffer.from(x, 'base64url')]).toString('base64url');
  return `${kid}=k4.secret.${secret}`;
}
const SIGNING_KEY = keyText('store-js');


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

/** An endpoint in the emulator for the relay at `url`: its secret. */
async function endpointFor(url) {
  const r = await api('/v1/webhooks/endpoints', 'POST', {
    url: `${url}/v1/webhooks/polar`,
    format: 'raw',
    events: ['benefit_grant.revoked', 'benefit_grant.updated'],
  });
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
  const relay = relayPkg.createRelay({
    accessToken: TOKEN,
    signingKey: SIGNING_KEY,
    baseUrl: polar.url,
    perIp: '1000/1000',
    store: { webhookSecret: endpoint.secret },
    storage,
  });
  const server = createServer(relayPkg.createNodeListener(relay));
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  try {
    await revokedThroughTheWebhook(url, endpoint.id);
    // What the store wrote is what a new relay reads back: a fresh relay answers from it.
    assert.ok([...saved.keys()].some((k) => k.startsWith('e:')));
    assert.ok([...saved.keys()].some((k) => k.startsWith('w:')), 'the webhook id was saved');
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("node: a stale grant says its Age, and the npm client's grace runs from Polar's answer, not the replay", async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const relay = relayPkg.createRelay({
    accessToken: TOKEN,
    signingKey: SIGNING_KEY,
    baseUrl: polar.url,
    perIp: '1000/1000',
    store: { freshFor: 1, staleFor: 3600 },
  });
  const server = createServer(relayPkg.createNodeListener(relay));
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
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
    await new Promise((resolve) => server.close(resolve));
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
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const relay = relayPkg.createRelay({
    accessToken: TOKEN,
    signingKey: SIGNING_KEY,
    baseUrl: polar.url,
    perIp: '1000/1000',
    store: { webhookSecret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' },
  });
  const server = createServer(relayPkg.createNodeListener(relay));
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
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
    await new Promise((resolve) => server.close(resolve));
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
  let calls = 0;
  const fetchStub = async (url) => {
    calls++;
    assert.ok(url.startsWith('https://sandbox-api.polar.sh/'), url);
    return new Response('{"error":"ResourceNotFound","detail":"License key not found"}', { status: 404, headers: { 'content-type': 'application/json' } });
  };
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, server: 'sandbox', perIp: '1000/1000', perKey: '1000/1000', store: {}, fetch: fetchStub });
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
  const options = { accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: polar.url, perIp: '1000/1000', perKey: '1000/1000', store: { budget: 8, budgetReserve: 2 }, storage, fetch: fetchStub };
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

test('durableStorage keeps the budget under one key and loads it back', async () => {
  const { durableStorage } = await import(pathToFileURL(join(PACKAGE_DIR, 'relay-handler.js')).href);
  const kv = new Map();
  const fake = {
    async list() {
      return new Map(kv);
    },
    async put(entries) {
      for (const [k, v] of Object.entries(entries)) kv.set(k, v);
    },
    async delete(keys) {
      for (const k of keys) kv.delete(k);
    },
  };
  const storage = durableStorage(fake);
  const state = (n) => `1000 0 0:${n}`;
  await storage.save([{ op: 'budget', state: state(1) }, { op: 'webhook', id: 'evt', at: 5 }, { op: 'budget', state: state(2) }]);
  assert.deepEqual([...kv.keys()].sort(), ['b:budget', 'w:evt']);
  assert.deepEqual(await storage.load(), [{ op: 'budget', state: state(2) }, { op: 'webhook', id: 'evt', at: 5 }]);
});

// ---- workerd, with a Durable Object ---------------------------------------------------------

const WORKER = `import { relayStore, relayWorker } from './polar-license/ENTRY';
const optionsOf = (env) => ({
  accessToken: env.POLAR_ACCESS_TOKEN,
  signingKey: env.RELAY_SIGNING_KEY,
  baseUrl: 'POLAR_URL',
  perIp: '1000/1000',
  store: { webhookSecret: env.POLAR_WEBHOOK_SECRET },
});
export const PolarRelayStore = relayStore(optionsOf);
export default relayWorker(optionsOf);
`;

function capnp({ port, polarHost, files, secret, storeDir, withStore }) {
  const esm = (name) => `(name = "polar-license/${name}", esModule = embed "${name}")`;
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .relay),
    (name = "polar", external = (address = "${polarHost}", http = ())),
    (name = "store-disk", disk = (path = "${storeDir}", writable = true)),
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const relay :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    ${files.filter((f) => f.endsWith('.js')).map(esm).join(',\n    ')},
    (name = "polar-license/polar_license_relay_bg.wasm", wasm = embed "polar_license_relay_bg.wasm"),
  ],
  compatibilityDate = "2026-11-01",
  ${withStore ? 'durableObjectNamespaces = [(className = "PolarRelayStore", uniqueKey = "polar-relay-store-test")],\n  durableObjectStorage = (localDisk = "store-disk"),' : ''}
  bindings = [
    (name = "POLAR_ACCESS_TOKEN", text = "${TOKEN}"),
    (name = "RELAY_SIGNING_KEY", text = "${SIGNING_KEY}"),
    (name = "POLAR_WEBHOOK_SECRET", text = "${secret}"),
    ${withStore ? '(name = "POLAR_RELAY_STORE", durableObjectNamespace = "PolarRelayStore"),' : ''}
  ],
  globalOutbound = "polar",
);
`;
}

async function workerd({ port, secret, storeDir, withStore = true }) {
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-workerd-store-'));
  const entry = manifest.exports['./relay'].workerd.replace('./', '');
  const files = [entry, 'relay-handler.js', 'polar_license_relay.js', 'polar_license_relay_bg.wasm'];
  for (const f of files) await copyFile(join(PACKAGE_DIR, f), join(dir, f));
  await writeFile(join(dir, 'worker.js'), WORKER.replace('ENTRY', entry).replace('POLAR_URL', polar.url));
  await writeFile(join(dir, 'config.capnp'), capnp({ port, polarHost: new URL(polar.url).host, files, secret, storeDir, withStore }));
  return runWorkerd(dir, port, VALIDATE);
}

test('workerd: a Durable Object holds the store; a revocation arrives as a webhook; the store survives a restart', async () => {
  const storeDir = await mkdtemp(join(tmpdir(), 'polar-license-do-'));
  await mkdir(storeDir, { recursive: true });
  const port = await freePort();
  const endpoint = await endpointFor(`http://127.0.0.1:${port}`);
  let host = await workerd({ port, secret: endpoint.secret, storeDir });
  try {
    await revokedThroughTheWebhook(host.url, endpoint.id);
    const key = newKey();
    assert.equal((await check(host.url, key)).source, 'polar');
    await host.close();
    // The same disk, a new runtime: answered from the stored verdict, no call.
    host = await workerd({ port, secret: endpoint.secret, storeDir });
    const calls = polar.requestCount();
    const again = await check(host.url, key);
    assert.equal(again.status, 200, again.body);
    assert.equal(again.source, 'store');
    assert.ok(again.lease);
    assert.equal(polar.requestCount(), calls);
  } finally {
    await host.close();
    await api(`/v1/webhooks/endpoints/${endpoint.id}`, 'DELETE');
    await rm(storeDir, { recursive: true, force: true });
  }
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
