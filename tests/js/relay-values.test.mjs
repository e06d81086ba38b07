// Issue #68's table on both relay hosts, read through the npm package: the same rows against the
// native relay (`polar-license relay serve --sign-entitlements`, POLAR_CLI) and the npm
// package's relay under Cloudflare's Workers runtime (`workerd`, `signEntitlements: true`, its
// store in a Durable Object), each in front of one `polar-license emulator` seeded here (its
// webhooks sent at once to both relays, an endpoint each), each read by a `LicenseClient` in
// signed mode (the relay's key), asking at every check:
//
// - a Feature Flag's values granted (typed as Polar's metadata: integer, string, float,
//   boolean; a name not set is `undefined`), changed (`benefit.updated`: the new value within
//   one refresh, never another), revoked (`benefit_grant.revoked`: the name is `undefined`
//   while the key still licenses);
// - each lifecycle case (paused with its resume date, canceled, past due, seat removed,
//   refunded with revocation, rotated) ending in its typed detail on the check's rejection and on
//   a refused activation;
// - the paused subscription resumed: the same key licenses again (issue #68: the Workers relay
//   kept answering `inactive` while Polar licensed the key; the resume's webhook now makes the
//   stored revocation a re-check in the core, with or without the roster).
//
// - the signed lease verifies offline (issue #68): the relay unreachable (a proxy in front of it
//   answering nothing), the check licenses from the cache with the lease's values; the lease's
//   values altered on the way after the relay signed them (the proxy edits the lease header's
//   payload), an app with nothing cached is refused (`protocol_error`, no value) and the app
//   holding the good lease keeps its values, never the altered ones.
//
// - credits (`--record-usage` / `recordUsage`, `POST /v1/usage/record`): a balance consumed to
//   zero and past it without the seller's rule (Polar never refuses usage: the key licenses,
//   Polar's balance reads negative), and to zero with it (`--refuse-at-zero-credits` /
//   `refuseAtZeroCredits`: `credits_exhausted`, the report not ingested); a retried report (the
//   same id) counted once; a report while Polar is down (the emulator stopped, restarted on its
//   state file and port) ingested once after.
// - the usage acknowledgement (issue #76): signed by both hosts (the Workers relay's by its
//   host's WebCrypto key) and verified by polar-license/usage with `relayKeys`, for a recorded
//   report and for the seller's refusal at zero; a proxy (this file's `fetch`) that strips the
//   token and writes a million credits in, or turns the refusal into `recorded` with the token
//   kept or stripped, is `protocol_error` with no balance.
//
// The hosts' rows run at once; no row waits on a clock (the emulator sends its webhooks at once,
// `--webhook-time-scale 0.0001`), each poll is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ORG, PACKAGE_DIR, mapStorage, pkg, rejection, served } from './emulator.mjs';
import { pathToFileURL } from 'node:url';
import {
  CASES, CREDIT, EVENT, EVENTS, LICENSE, METER, RESUMES_AT, TOKEN, VALIDATE, VALUES, emulatorArgs, keygen, relayOn as startRelay, uuid,
} from './values-polar.mjs';

const skip = CLI ? false : 'needs the native command line (POLAR_CLI)';
const HOSTS = ['native', 'workers'];

const USAGE = '/v1/usage/record';
/** The credit benefit's units on the meter. */
const CREDITED = 10;
/** The credit keys of host `i`: `free` on its relay, `rule` on its relay with the seller's rule. */
const creditsOf = (i) =>
  Object.fromEntries(
    ['free', 'rule'].map((v, j) => [v, { key: `USE-${HOSTS[i].toUpperCase()}-${v.toUpperCase()}-7A8B`, customer: uuid('c', 2 * i + j) }]),
  );

const { LicenseClient } = await pkg();
const { recordUsage } = await import(pathToFileURL(join(PACKAGE_DIR, 'usage.js')).href);

/** What each host's rows use: its flag benefit, its keys and its customer. */
function keysOf(i) {
  const mark = HOSTS[i].toUpperCase();
  return {
    flag: uuid('0', i),
    customer: uuid('6', i),
    values: `VAL-${mark}-1B2C3D`,
    // The offline row's: a flag of its own (the first row changes the other's values) and a
    // customer of its own.
    offlineFlag: uuid('2', i),
    offline: { key: `OFF-${mark}-5A6B7C`, customer: uuid('7', i) },
    cases: Object.fromEntries(CASES.map((c) => [c, `LIFE-${mark}-${c.toUpperCase().replace('_', '')}-4E5F`])),
  };
}

/** The seed: per host a flag benefit granted to its value key, and a key per lifecycle case. */
function seed() {
  const benefits = [];
  const keys = [];
  HOSTS.forEach((_, i) => {
    const k = keysOf(i);
    benefits.push({ id: k.flag, type: 'feature_flag', metadata: VALUES });
    const key = (key, n, more) => ({ key, benefit_id: LICENSE, customer_id: k.customer, ...more });
    const sub = (n) => ({ subscription: { id: uuid('9', 16 * i + n) } });
    keys.push(key(k.values, 0, { ...sub(0), benefits: [k.flag] }));
    benefits.push({ id: k.offlineFlag, type: 'feature_flag', metadata: VALUES });
    keys.push({ key: k.offline.key, benefit_id: LICENSE, customer_id: k.offline.customer, benefits: [k.offlineFlag] });
    keys.push(key(k.cases.paused, 1, sub(1)));
    keys.push(key(k.cases.canceled, 2, sub(2)));
    keys.push(key(k.cases.past_due, 3, sub(3)));
    keys.push(key(k.cases.seat_revoked, 4, { ...sub(4), member: { id: uuid('3', i), email: `seat${i}@example.com` } }));
    keys.push(key(k.cases.refunded, 5, { order: { id: uuid('1', 16 * i + 5) } }));
    keys.push(key(k.cases.rotated, 6, {}));
    Object.values(creditsOf(i)).forEach(({ key, customer }, j) =>
      keys.push({ key, benefit_id: LICENSE, customer_id: customer, subscription: { id: uuid('e', 2 * i + j) }, benefits: [CREDIT] }),
    );
  });
  benefits.push({ id: CREDIT, type: 'meter_credit', meter_id: METER, units: CREDITED });
  const meters = [{ id: METER, name: 'Tokens', event_name: EVENT, aggregation: { func: 'sum', property: 'units' } }];
  return { organization_id: ORG, access_tokens: [{ token: TOKEN, organization_id: ORG }], benefits, meters, license_keys: keys };
}

let scratch;
let polar;
let keyFile;
let pair;
let polarArgs;
const hosts = [];
/** Per host, its relay with the seller's rule (`refuseAtZeroCredits`). */
const ruled = [];

/** A call to the emulator with the organization token: `{ status, json }`. */
async function call(method, path, body) {
  const r = await fetch(`${polar.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: r.status, json, text };
}

async function control(method, path, body) {
  const r = await call(method, path, body);
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${r.text}`);
  return r.json;
}

/** A relay on `name`'s host taking usage (with the seller's rule: `rule`), its webhooks from
 * `endpoint` (none: no webhooks). */
const relayOn = (name, endpoint, rule) =>
  startRelay(name, { polarUrl: polar.url, scratch, keyFile, endpoint, rule, name: 'polar-relay-values-test' });

/** A relay on `name`'s host, its endpoint made at the emulator and pointed at it. */
async function host(name, i) {
  const endpoint = await control('POST', '/v1/webhooks/endpoints', { url: 'http://127.0.0.1:9/later', format: 'raw', events: EVENTS });
  const relay = await relayOn(name, endpoint, false);
  await control('PATCH', `/v1/webhooks/endpoints/${endpoint.id}`, { url: `${relay.url}/v1/webhooks/polar` });
  return { name, relay, keys: keysOf(i), credits: creditsOf(i), client: client(relay.url) };
}

/** The app: signed mode with the relay's key, every check asking the relay. */
function client(url) {
  return new LicenseClient({ organizationId: ORG, baseUrl: url, storage: mapStorage(), relayKeys: [pair], gracePolicy: { revalidateAfter: 0 } });
}

before(async () => {
  if (skip) return;
  scratch = await mkdtemp(join(tmpdir(), 'polar-license-values-'));
  writeFileSync(join(scratch, 'seed.json'), JSON.stringify(seed()));
  // Its state in a file: the credits' last row stops it and starts it again on its port.
  polarArgs = emulatorArgs(scratch);
  polar = await served([...polarArgs, '--port', '0'], { home: scratch, ready: null });
  ({ keyFile, pair } = await keygen(scratch));
  for (const [i, name] of HOSTS.entries()) hosts.push(await host(name, i));
  for (const [i, name] of HOSTS.entries()) ruled.push({ name, relay: await relayOn(name, null, true), credits: creditsOf(i) });
});
after(async () => {
  for (const h of [...hosts, ...ruled]) await h.relay.close();
  await polar?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** Checks `key` through `h` until `done(result or error)` holds (at most 10 s); returns the last. */
async function until(h, key, done, what) {
  const start = performance.now();
  const seen = [];
  for (;;) {
    let r;
    try {
      r = await h.client.check(key);
    } catch (e) {
      r = e;
    }
    seen.push(r.code ?? h.client.entitlement('max_upload_size'));
    if (done(r)) return { r, seen, ms: performance.now() - start };
    assert.ok(performance.now() - start < 10_000, `${h.name}: ${what}: not within 10 s (seen ${JSON.stringify(seen.slice(-5))})`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

test("a flag's values granted, changed within one refresh, revoked (both hosts)", { skip, timeout: 60_000 }, async () => {
  await Promise.all(
    hosts.map(async (h) => {
      const { flag, values: key } = h.keys;
      // Granted: the first lease may go without them (the relay reads the customer after it).
      const { r } = await until(h, key, (r) => r.entitlements != null, 'the values');
      assert.deepEqual(r.entitlements, VALUES, `${h.name}: the report's values`);
      for (const [name, value] of Object.entries(VALUES)) assert.equal(h.client.entitlement(name), value, `${h.name}: ${name}`);
      assert.equal(typeof h.client.entitlement('beta'), 'boolean');
      assert.equal(h.client.entitlement('seats'), undefined, `${h.name}: a name the flag does not set`);
      assert.equal(h.client.entitlement('constructor'), undefined, `${h.name}: not the object's own`);

      // Changed: the new value within one refresh (the webhook marks the values stale, the
      // relay reads them again), and no value but the old and the new meanwhile.
      await control('PATCH', `/__emulator/benefits/${flag}`, { metadata: { ...VALUES, max_upload_size: 20 } });
      const changed = await until(h, key, (r) => h.client.entitlement('max_upload_size') === 20, 'the new value');
      assert.ok(
        changed.seen.every((v) => v === 10 || v === 20 || v === null),
        `${h.name}: only the old or new value, or none known: ${changed.seen}`,
      );
      assert.equal(h.client.entitlement('role'), 'editor');

      // Revoked: the key still licenses, the flag's names are not granted.
      await control('PATCH', `/__emulator/keys/${key}/benefits/${flag}`, { is_granted: false });
      const revoked = await until(h, key, () => h.client.entitlement('max_upload_size') === undefined, 'the revocation');
      assert.equal(revoked.r.source, 'online', `${h.name}: still licensed`);
      assert.deepEqual(revoked.r.entitlements, {}, `${h.name}: none granted`);
    }),
  );
});

// What leaseProxy does with each request.
const PASS = 'pass';
const ALTER = 'alter';
const DOWN = 'down';
const LEASE_HEADER = 'polar-license-lease';

/** `token` (`v4.public.<payload>[.<footer>]`) with `from` replaced by `to` (as long) in its
 * signed payload, the signature kept; null when `from` is not there. */
function editPayload(token, from, to) {
  const parts = token.split('.');
  const payload = Buffer.from(parts[2] ?? '', 'base64url');
  const at = payload.indexOf(from);
  if (at < 0) return null;
  payload.write(to, at);
  parts[2] = payload.toString('base64url');
  return parts.join('.');
}

/** A proxy on loopback in front of `upstream`: in PASS every answer as it came; in ALTER the
 * relay's lease edited inside its signed payload (`"max_upload_size":10` made `90`), counted in
 * `edited`; in DOWN each connection closed unanswered (the relay unreachable). */
async function leaseProxy(upstream) {
  const proxy = { mode: PASS, edited: 0 };
  const server = createServer(async (req, res) => {
    if (proxy.mode === DOWN) return void req.socket.destroy();
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const headers = { ...req.headers };
    delete headers.host;
    delete headers['content-length'];
    const up = await fetch(`${upstream}${req.url}`, {
      method: req.method,
      headers,
      body: chunks.length ? Buffer.concat(chunks) : undefined,
    });
    const body = Buffer.from(await up.arrayBuffer());
    const out = {};
    up.headers.forEach((value, name) => {
      if (name === 'content-length' || name === 'content-encoding' || name === 'transfer-encoding') return;
      if (name === LEASE_HEADER && proxy.mode === ALTER) {
        const token = editPayload(value, '"max_upload_size":10', '"max_upload_size":90');
        if (token !== null) {
          proxy.edited += 1;
          value = token;
        }
      }
      out[name] = value;
    });
    res.writeHead(up.status, out);
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  proxy.url = `http://127.0.0.1:${server.address().port}`;
  proxy.close = () => new Promise((r) => {
    server.close(r);
    server.closeAllConnections();
  });
  return proxy;
}

test('the signed lease verifies offline with its values; a lease whose values were altered is refused (both hosts)', { skip, timeout: 60_000 }, async () => {
  await Promise.all(
    hosts.map(async (h) => {
      const proxy = await leaseProxy(h.relay.url);
      try {
        const { key } = h.keys.offline;
        const app = { name: h.name, client: client(proxy.url) };
        // Online through the proxy passing answers as they came, until the lease has the values.
        const { r } = await until(app, key, (r) => r.entitlements != null, 'the values');
        assert.equal(r.source, 'online', `${h.name}: ${JSON.stringify(r)}`);
        assert.deepEqual(r.entitlements, VALUES, `${h.name}: the report's values`);

        // Offline: the relay unreachable, the cached lease verifies with the relay's public key
        // alone, and its values are read.
        proxy.mode = DOWN;
        const offline = await app.client.check(key);
        assert.equal(offline.source, 'cache', `${h.name}: ${JSON.stringify(offline)}`);
        assert.deepEqual(offline.entitlements, VALUES, `${h.name}: offline values`);
        assert.equal(app.client.entitlement('max_upload_size'), 10, `${h.name}: offline`);

        // Altered on the way: not the relay's lease. An app with nothing cached is refused and
        // reads no value.
        proxy.mode = ALTER;
        const fresh = client(proxy.url);
        for (let i = 0; i < 2; i++) {
          const refused = await rejection(fresh.check(key));
          assert.equal(refused.code, 'protocol_error', `${h.name}: ${refused.code} ${refused.message}`);
          assert.equal(fresh.entitlement('max_upload_size'), null, `${h.name}: the altered value was read`);
        }
        // The app holding the earlier lease: the altered answer is not Polar's; it licenses from
        // its cache with the values it verified then, never the altered ones.
        const kept = await app.client.check(key);
        assert.equal(kept.source, 'cache', `${h.name}: ${JSON.stringify(kept)}`);
        assert.deepEqual(kept.entitlements, VALUES, `${h.name}: the cached values`);
        assert.equal(app.client.entitlement('max_upload_size'), 10, `${h.name}: the cached value`);
        assert.ok(proxy.edited >= 3, `${h.name}: the proxy altered ${proxy.edited} leases`);
      } finally {
        await proxy.close();
      }
    }),
  );
});

/** Each case's change at the emulator. */
const CHANGES = {
  paused: async (key) => {
    await control('POST', `/__emulator/keys/${key}/subscription`, { action: 'pause_at_period_end', resumes_at: RESUMES_AT });
    await control('POST', `/__emulator/keys/${key}/subscription`, { action: 'period_end' });
  },
  canceled: async (key) => {
    await control('POST', `/__emulator/keys/${key}/subscription`, { action: 'cancel_at_period_end' });
    await control('POST', `/__emulator/keys/${key}/subscription`, { action: 'period_end' });
  },
  past_due: (key) => control('POST', `/__emulator/keys/${key}/subscription`, { action: 'past_due', grace_days: 0 }),
  seat_revoked: (key) => control('POST', `/__emulator/keys/${key}/seat/revoke`),
  refunded: (key) => control('POST', `/__emulator/keys/${key}/refund`, { revoke_benefits: true }),
  rotated: (key) => control('POST', `/__emulator/keys/${key}/rotate`),
};

test('each lifecycle case ends in its typed detail, on a check and on an activation (both hosts)', { skip, timeout: 60_000 }, async () => {
  await Promise.all(
    hosts.map(async (h) => {
      for (const kind of CASES) {
        const key = h.keys.cases[kind];
        // Licensed first, through the relay (it learns the key's id).
        assert.equal((await h.client.check(key)).source, 'online', `${h.name}: ${kind}: licensed first`);
        await CHANGES[kind](key);
        const { r } = await until(h, key, (r) => r.stopped !== undefined, `${kind}'s detail`);
        assert.ok(r instanceof Error, `${h.name}: ${kind}: a rejection`);
        assert.equal(r.stopped.kind, kind, `${h.name}: ${kind}: ${JSON.stringify(r.stopped)}`);
        assert.equal(r.code, kind === 'rotated' ? 'not_found' : 'inactive', `${h.name}: ${kind}: the code stays Polar's`);
        if (kind === 'paused') assert.equal(r.stopped.until, Date.parse(RESUMES_AT) / 1000, `${h.name}: the resume date`);
        // A refused activation carries it too.
        const refused = await rejection(h.client.activate(key, { label: 'values-test' }));
        assert.equal(refused.stopped?.kind, kind, `${h.name}: ${kind}: the activation's refusal: ${refused.code} ${JSON.stringify(refused.stopped)}`);
      }
    }),
  );
});

// Issue #68 on Workers: a check that asked Polar while the pause's revocation landed stored
// Polar's denial (which names no key or customer) with the revocation's mark, out of every later
// webhook's reach: refused from the store for `denial_for` after the resume. The denial now keeps
// the key's ids (crates/relay/src/verdicts.rs; crates/relay/tests/store_limits.rs drives the race).
for (const name of HOSTS) {
  test(`a resumed subscription licenses the same key again (${name})`, { skip }, async () => {
    const h = hosts.find((h) => h.name === name);
    const paused = h.keys.cases.paused;
    await control('POST', `/__emulator/keys/${paused}/subscription`, { action: 'resume' });
    const start = performance.now();
    for (;;) {
      const r = await h.client.check(paused).catch((e) => e);
      if (!(r instanceof Error)) {
        assert.equal(r.source, 'online');
        break;
      }
      if (performance.now() - start > 10_000) {
        const direct = await call('POST', VALIDATE, { key: paused, organization_id: ORG });
        assert.fail(`${name}: still ${r.code} ${Math.round(performance.now() - start)} ms after the resume; Polar itself answers ${direct.status}`);
      }
      await new Promise((res) => setTimeout(res, 50));
    }
  });
}

test('unsigned mode knows no values: null, never undefined; a name must be a string', { skip }, async () => {
  const unsigned = new LicenseClient({ organizationId: ORG, baseUrl: polar.url, storage: mapStorage() });
  assert.equal(unsigned.entitlement('max_upload_size'), null, 'before any check');
  const key = hosts[0].keys.values;
  const r = await unsigned.check(key);
  assert.equal(r.source, 'online');
  assert.equal(r.entitlements, null);
  assert.equal(unsigned.entitlement('max_upload_size'), null);
  assert.throws(() => unsigned.entitlement(7), (e) => e.code === 'invalid_input' && e.field === 'name');
});

/** A usage report of `units` with the idempotency id `id` for `key` through `relay`: `{ status, json }`. */
async function report(relay, key, units, id) {
  const r = await fetch(`${relay.url}${USAGE}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key, organization_id: ORG, meter: EVENT, units, id }),
  });
  const text = await r.text();
  return { status: r.status, json: JSON.parse(text) };
}

/** Polar's (the emulator's) meter of `customer`: `{ consumed, balance }`, as it counted the events ingested. */
async function meter(customer) {
  const { items } = await control('GET', `/v1/customer-meters/?customer_id=${customer}`);
  const m = items.find((m) => m.meter_id === METER);
  return { consumed: m?.consumed_units ?? 0, balance: m?.balance ?? CREDITED };
}

/** Waits (10 s at most) until Polar has counted `want` units of `customer`'s: a read every
 * 250 ms (both hosts' rows poll at once, and the organization's token budget, 500 calls a
 * minute shared with the relays' own reads, must outlast a slow ingestion on a loaded machine:
 * at 25 ms the two polls spent it in about 6 s and Polar answered 429). */
async function untilConsumed(customer, want, what) {
  const start = performance.now();
  for (;;) {
    const { consumed } = await meter(customer);
    if (Math.abs(consumed - want) < 1e-9) return;
    assert.ok(performance.now() - start < 10_000, `${what}: Polar counted ${consumed}, not ${want}, in 10 s`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

/** Reports 1 unit at a time (new ids `tag-n`) until the relay's answer knows the balance (its
 * first read of the customer's meters); returns the units reported. */
async function untilBalanceKnown(relay, key, tag) {
  const start = performance.now();
  for (let n = 1; ; n++) {
    const { status, json } = await report(relay, key, 1, `${tag}-${n}`);
    assert.equal(status, 200, JSON.stringify(json));
    if (json.balance !== null) return n;
    assert.ok(performance.now() - start < 10_000, `no balance in 10 s: ${JSON.stringify(json)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

test('credits consumed to zero and past it without the seller\'s rule: Polar never refuses usage (both hosts)', { skip, timeout: 60_000 }, async () => {
  await Promise.all(
    hosts.map(async (h) => {
      const { key, customer } = h.credits.free;
      let used = await untilBalanceKnown(h.relay, key, 'free');
      while (used < CREDITED + 4) {
        const { status, json } = await report(h.relay, key, 2, `past-${used}`);
        assert.equal(status, 200, `${h.name}: nothing refuses usage: ${JSON.stringify(json)}`);
        used += 2;
        assert.equal(json.balance, CREDITED - used, `${h.name}: the balance the relay knows`);
      }
      await untilConsumed(customer, used, h.name);
      assert.equal((await meter(customer)).balance, CREDITED - used, `${h.name}: Polar's balance reads negative`);
      // The key still licenses: Polar's answer, not the balance, is the verdict.
      assert.equal((await h.client.check(key)).source, 'online', `${h.name}: licensed past zero`);
    }),
  );
});

test("the seller's rule refuses usage at zero with credits_exhausted, and keeps nothing (both hosts)", { skip, timeout: 60_000 }, async () => {
  await Promise.all(
    ruled.map(async (h) => {
      const { key, customer } = h.credits.rule;
      let used = await untilBalanceKnown(h.relay, key, 'rule');
      // Down to zero (the report crossing it is kept: the usage happened).
      while (used < CREDITED) {
        const { status, json } = await report(h.relay, key, 3, `use-${used}`);
        assert.equal(status, 200, `${h.name}: ${JSON.stringify(json)}`);
        used += 3;
        assert.equal(json.balance, CREDITED - used, `${h.name}: the balance the relay knows`);
      }
      const { status, json } = await report(h.relay, key, 1, 'over-1');
      assert.equal(status, 402, `${h.name}: ${JSON.stringify(json)}`);
      assert.equal(json.reason, 'credits_exhausted', h.name);
      assert.equal(json.balance, CREDITED - used, h.name);
      await untilConsumed(customer, used, h.name);
      // The refused report never reaches Polar (a batch comes within 200 ms of a report).
      await new Promise((res) => setTimeout(res, 400));
      assert.equal((await meter(customer)).consumed, used, `${h.name}: the refused report was not ingested`);
    }),
  );
});

test('a retried usage report (the same id) is counted once (both hosts)', { skip, timeout: 60_000 }, async () => {
  await Promise.all(
    hosts.map(async (h) => {
      const { key, customer } = h.credits.free;
      const before = (await meter(customer)).consumed;
      const first = await report(h.relay, key, 3, 'retry-1');
      assert.equal(first.status, 200, JSON.stringify(first.json));
      assert.deepEqual([first.json.recorded, first.json.duplicate], [true, false], `${h.name}: ${JSON.stringify(first.json)}`);
      // Sent again before it was ingested, and after.
      const waiting = await report(h.relay, key, 3, 'retry-1');
      assert.equal(waiting.json.duplicate, true, `${h.name}: while waiting: ${JSON.stringify(waiting.json)}`);
      await untilConsumed(customer, before + 3, h.name);
      const ingested = await report(h.relay, key, 3, 'retry-1');
      assert.equal(ingested.status, 200);
      assert.equal(ingested.json.duplicate, true, `${h.name}: once ingested: ${JSON.stringify(ingested.json)}`);
      await new Promise((res) => setTimeout(res, 400));
      assert.equal((await meter(customer)).consumed, before + 3, `${h.name}: Polar counted it once`);
    }),
  );
});

/** `fetch` through a proxy that hands the relay's answer to `edit(status, headers, body)` and
 * answers what it returns. */
const proxied = (edit) => async (url, init) => {
  const r = await fetch(url, init);
  const [status, headers, body] = edit(r.status, new Headers(r.headers), await r.text());
  return new Response(body, { status, headers });
};

test("the usage acknowledgement is signed on both hosts, and signed mode believes nothing else (issue #76)", { skip, timeout: 60_000 }, async () => {
  await Promise.all(
    HOSTS.map(async (name, i) => {
      const h = hosts[i];
      const r = ruled[i];
      const usage = (relay, key, extra = {}) =>
        recordUsage({ organizationId: ORG, relay: relay.url, key, meter: EVENT, units: 1, relayKeys: [pair], ...extra });
      const before = (await meter(h.credits.free.customer)).consumed;
      // Recorded, its acknowledgement signed by the relay's key (the Workers relay's by
      // WebCrypto) and verified by the npm client.
      const done = await usage(h.relay, h.credits.free.key, { id: `signed-${name}-1` });
      assert.equal(done.signed, true, `${name}: ${JSON.stringify(done)}`);
      assert.notEqual(done.balance, 1_000_000);
      // The seller's refusal at zero, signed too.
      const refused = await rejection(usage(r.relay, r.credits.rule.key, { id: `signed-${name}-2` }));
      assert.equal(refused.code, 'credits_exhausted', `${name}: ${refused.message}`);
      assert.ok(refused.balance <= 0, `${name}: ${refused.balance}`);
      // A proxy that strips the token and writes a million credits in: not believed.
      const stripRich = proxied((status, headers, body) => {
        headers.delete('polar-license-usage');
        return [status, headers, JSON.stringify({ ...JSON.parse(body), balance: 1_000_000 })];
      });
      const stripped = await rejection(usage(h.relay, h.credits.free.key, { id: `signed-${name}-3`, fetch: stripRich }));
      assert.deepEqual([stripped.code, stripped.balance], ['protocol_error', null], `${name}: ${stripped.message}`);
      // The refusal turned into `recorded` with credits, the token kept or stripped: not believed.
      for (const keep of [true, false]) {
        const free = proxied((status, headers) => {
          if (!keep) headers.delete('polar-license-usage');
          return [200, headers, '{"recorded":true,"duplicate":false,"balance":5}'];
        });
        const e = await rejection(usage(r.relay, r.credits.rule.key, { id: `signed-${name}-4-${keep}`, fetch: free }));
        assert.deepEqual([e.code, e.balance], ['protocol_error', null], `${name} (token kept: ${keep}): ${e.message}`);
      }
      // The relay kept both recorded reports (the stripped answer's too: the client was told
      // nothing it could believe, and sends it again with its id); ingested before the next row.
      await untilConsumed(h.credits.free.customer, before + 2, name);
    }),
  );
});

// Last: it stops Polar (every row above would see it down).
test('a usage report while Polar is down is kept and ingested once after (both hosts)', { skip, timeout: 60_000 }, async () => {
  // Each key's verdict stored by the rows above (fresh for minutes): a report needs no call.
  const before = await Promise.all(hosts.map(async (h) => (await meter(h.credits.free.customer)).consumed));
  const port = new URL(polar.url).port;
  await polar.close();
  for (const h of hosts) {
    const { status, json } = await report(h.relay, h.credits.free.key, 2, 'down-1');
    assert.equal(status, 200, `${h.name}: ${JSON.stringify(json)}`);
    assert.equal(json.recorded, true, h.name);
  }
  // Polar unreachable: each relay tries its batch, keeps it, tries again after a backoff.
  await new Promise((res) => setTimeout(res, 1_200));
  polar = await served([...polarArgs, '--port', port], { home: scratch, ready: null });
  await Promise.all(
    hosts.map(async (h, i) => {
      const { customer } = h.credits.free;
      await untilConsumed(customer, before[i] + 2, `${h.name}: after Polar came back`);
      await new Promise((res) => setTimeout(res, 400));
      assert.equal((await meter(customer)).consumed, before[i] + 2, `${h.name}: ingested once`);
    }),
  );
});
