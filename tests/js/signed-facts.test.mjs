// Issue #62 item 2 on the npm face: signed mode trusts only signed facts (tests/signed_facts.rs
// natively, crates/cli/tests/cli_signed.rs and bindings/c/tests/test_signed.c through the
// testkit's proxy). The installed package's client, for a build with a release date (perpetual
// fallback), talks to the installed package's relay (`polar-license/relay` in node, in front of
// the emulator: it signs leases, and signs Polar's denials for this request's nonce) through the
// attacker's proxy on loopback, which either turns fake relay and answers every validate with an
// unsigned `404 "License key has expired."`, or adds an unsigned cancelled `subscription` to the
// relay's genuine grant. Neither makes a revoked (refunded) key a fallback in signed mode:
// online, offline (the proxy refusing connections), nor 40 days later, and the denial is kept.
// Without relay keys the forged expiry falls back (nothing is signed there: the limit
// docs/threat-model.md states).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { EMULATOR, ORG, forward, importAsApp, mapStorage, newKey, patchKey, pkg, rejection, relaySigningKey } from './emulator.mjs';

const { LicenseClient } = await pkg();
const relayPkg = await importAsApp('signed-facts-relay.mjs', 'polar-license/relay');

const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const SIGNER = relaySigningKey('relay-facts');
const HOUR = 3600;
const DAY = 86_400;
const rfc3339 = (t) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');
const day = (t) => rfc3339(t).slice(0, 10);

/** A server on loopback running `handler`; resolves to `{ url, close() }`. */
async function serve(handler) {
  const server = createServer(handler);
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(resolve);
      }),
  };
}

/**
 * The package's relay in node in front of the emulator, and the attacker's proxy in front of
 * it: `forge.expired` answers validates with the unsigned expiry, `forge.inject` adds the
 * unsigned subscription (ended the day before `forge.now()`), `forge.down` drops every
 * connection (offline); `forge.passed` counts what reached the relay.
 */
async function rig(now) {
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNER.text, baseUrl: EMULATOR, perIp: '1000/1000' });
  const relayServer = await serve(relayPkg.createNodeListener(relay));
  const forge = { expired: false, inject: false, down: false, passed: 0 };
  const proxy = await serve(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    if (forge.down) {
      req.socket.destroy();
      return;
    }
    const validate = req.url.endsWith('/validate');
    if (validate && forge.expired) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"ResourceNotFound","detail":"License key has expired."}');
      return;
    }
    forge.passed += 1;
    const answer = await forward(relayServer.url, req, chunks);
    let body = Buffer.from(await answer.arrayBuffer());
    if (validate && answer.status === 200 && forge.inject) {
      const json = JSON.parse(body.toString('utf8'));
      const ended = rfc3339(now() - DAY);
      json.subscription = {
        id: '7b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d',
        status: 'canceled',
        current_period_start: rfc3339(now() - 31 * DAY),
        current_period_end: ended,
        cancel_at_period_end: true,
        ends_at: ended,
      };
      body = Buffer.from(JSON.stringify(json));
    }
    const out = {};
    answer.headers.forEach((value, name) => {
      if (!['content-length', 'content-encoding', 'transfer-encoding', 'connection', 'keep-alive'].includes(name)) out[name] = value;
    });
    res.writeHead(answer.status, out);
    res.end(body);
  });
  return {
    url: proxy.url,
    forge,
    close: async () => {
      await proxy.close();
      await relayServer.close();
    },
  };
}

/** An app behind the proxy for a build released on `released`, signed unless `relayKeys` is
 * empty, on `storage`, its clock `now()`, every check asking. */
function app(r, now, storage, released, relayKeys = [SIGNER.pair]) {
  return new LicenseClient({
    organizationId: ORG,
    baseUrl: r.url,
    machineId: 'machine-facts',
    appSecret: 'the npm app secret',
    storage,
    clock: () => now() * 1000,
    gracePolicy: { revalidateAfter: 0 },
    released,
    ...(relayKeys.length ? { relayKeys } : {}),
  });
}

/** A check that must be refused, with no fallback; resolves to its error. */
async function noFallback(client, key, what) {
  const e = await rejection(client.check(key));
  assert.ok(e, `${what}: not licensed`);
  assert.notEqual(e.fallback, true, `${what}: no fallback (${e.code})`);
  return e;
}

/** The code of the denial the record keeps, as `status` reads it. */
async function kept(client, key) {
  const s = await client.status(key);
  assert.equal(s.standing, 'denied', JSON.stringify(s));
  return s.denied?.code;
}

test('a forged unsigned expiry never licenses a revoked key in signed mode (online, offline, 40 days later; the denial kept); without relay keys it falls back', async () => {
  const start = Math.floor(Date.now() / 1000);
  let t = start;
  const now = () => t;
  const key = await newKey({ expires_at: rfc3339(start + 30 * DAY) });
  const r = await rig(now);
  try {
    const signedStore = mapStorage();
    const plainStore = mapStorage();
    await app(r, now, signedStore, day(start)).activate(key, { label: 'laptop' });
    await app(r, now, plainStore, day(start), []).activate(key, { label: 'desk' });
    t = start + HOUR;
    assert.equal((await app(r, now, signedStore, day(start)).check(key)).source, 'online');

    await patchKey(key, { status: 'revoked' });
    r.forge.expired = true;
    t = start + 2 * HOUR;
    const forged = await noFallback(app(r, now, signedStore, day(start)), key, 'the forged expiry');
    assert.equal(forged.code, 'expired');
    // Unsigned mode: the same forgery is believed (nothing is signed), the limit stated.
    const plain = await app(r, now, plainStore, day(start), []).check(key);
    assert.equal(plain.fallback, true, JSON.stringify(plain));

    // Offline: nothing answers; the cache does not fall back either.
    r.forge.expired = false;
    r.forge.down = true;
    t = start + 3 * HOUR;
    await noFallback(app(r, now, signedStore, day(start)), key, 'offline');
    // 40 days later: the fake relay again, then offline again.
    r.forge.down = false;
    r.forge.expired = true;
    t = start + 40 * DAY;
    await noFallback(app(r, now, signedStore, day(start)), key, '40 days later');
    r.forge.expired = false;
    r.forge.down = true;
    t = start + 40 * DAY + 60;
    await noFallback(app(r, now, signedStore, day(start)), key, '40 days later, offline');
    assert.equal(await kept(app(r, now, signedStore, day(start)), key), 'expired');
  } finally {
    await r.close();
  }
});

test('an injected unsigned subscription never makes a revoked key perpetual in signed mode (online, offline; the denial kept)', async () => {
  const start = Math.floor(Date.now() / 1000);
  let t = start;
  const now = () => t;
  // A build released three days ago: before the injected subscription's end (yesterday).
  const released = day(start - 3 * DAY);
  const key = await newKey();
  const r = await rig(now);
  try {
    const store = mapStorage();
    await app(r, now, store, released).activate(key, { label: 'laptop' });
    r.forge.inject = true;
    r.forge.passed = 0;
    t = start + 2 * HOUR;
    const injected = await app(r, now, store, released).check(key);
    assert.equal(injected.source, 'online');
    assert.notEqual(injected.fallback, true);
    assert.ok(r.forge.passed >= 1, 'the injected grant came through the proxy');
    // The license as it came carries the forged subscription (the client read it); the signed
    // paid-through date does not.
    assert.equal(injected.license.subscription?.status, 'canceled', JSON.stringify(injected.license));
    assert.equal(injected.paidThrough, null, 'the unsigned subscription is no paid-through date');
    r.forge.inject = false;

    await patchKey(key, { status: 'revoked' });
    t = start + 4 * HOUR;
    const revoked = await noFallback(app(r, now, store, released), key, 'Polar says no longer active');
    assert.equal(revoked.code, 'inactive');
    r.forge.down = true;
    t = start + 5 * HOUR;
    await noFallback(app(r, now, store, released), key, 'offline');
    assert.equal(await kept(app(r, now, store, released), key), 'inactive');
  } finally {
    await r.close();
  }
});
