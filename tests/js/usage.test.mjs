// polar-license/usage (issue #68 item 3, npm face) through the installed tarball, against the
// native relay (`polar-license relay serve --store memory --record-usage --sign-entitlements
// --refuse-at-zero-credits`, POLAR_CLI) in front of a native emulator (the same binary) seeded
// with a meter credit benefit of 10 units (the package's emulator reads no meters):
//
// - a report recorded with the app's id; the same id again a duplicate, counted once;
// - a send whose answer is lost on the way (the relay kept it; this file's fetch throws after
//   it): the core sends the same id again and the relay says duplicate, counted once;
// - the relay's balance (read from Polar's meter) counts each report once, down to zero, then
//   `credits_exhausted` as a UsageError (a LicenseError) with the balance; a key Polar does not
//   know is its denial;
// - empty meters, zero, negative, NaN and infinite units and bad ids are `invalid_input`
//   before anything is sent (this file's fetch counts the sends); bad options are typed;
// - a report the relay's backlog holds (a second relay whose token cannot write events: nothing
//   is ingested, a key's 100 waiting reports fill it) is a UsageError with the core's code,
//   `usage_backlog`, the relay's Retry-After and the id to send again;
// - signed mode (`relayKeys`, issue #76): recorded only from the relay's acknowledgement that
//   verifies (`signed: true`); a proxy (this file's `fetch`) that strips the token and writes a
//   million credits in, and a fake relay answering `recorded` with a million, are
//   `protocol_error` with no balance; a balance rewritten with the token kept reads the signed
//   one; without relay keys the fake answer is taken and says it is unsigned.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CLI, ORG, PACKAGE_DIR, pkg, rejection, served } from './emulator.mjs';

const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const LICENSE = '3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d';
const CREDIT = '6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a';
const TOKENS = '4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e';
const CUSTOMER = '6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e';
const KEY = 'USE-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E';
/** Signed mode's key: a customer (and credits) of its own. */
const SIGNED_KEY = 'USE-SIGNED-5F6A-4B7C-8D9E-0F1A2B3C4D5E';
const SIGNED_CUSTOMER = '7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f';
const METER = 'tokens_used';
const skip = CLI ? false : 'needs the native command line (POLAR_CLI)';

const { LicenseError } = await pkg();
const { recordUsage, UsageError } = await import(pathToFileURL(join(PACKAGE_DIR, 'usage.js')).href);

let scratch;
let polar;
let relay;
/** The relay's public key (`KID=k4.public.…`), as `relay keygen` prints it. */
let pair;

before(async () => {
  if (skip) return;
  scratch = await mkdtemp(join(tmpdir(), 'polar-license-usage-'));
  const seed = join(scratch, 'seed.json');
  await writeFile(seed, JSON.stringify({
    organization_id: ORG,
    access_tokens: [{ token: TOKEN }],
    meters: [{ id: TOKENS, name: 'Tokens', event_name: METER, aggregation: { func: 'sum', property: 'units' } }],
    benefits: [{ id: CREDIT, type: 'meter_credit', meter_id: TOKENS, units: 10 }],
    license_keys: [
      { key: KEY, benefit_id: LICENSE, customer_id: CUSTOMER, subscription: { id: '9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b' }, benefits: [CREDIT] },
      { key: SIGNED_KEY, benefit_id: LICENSE, customer_id: SIGNED_CUSTOMER, subscription: { id: 'af0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b' }, benefits: [CREDIT] },
    ],
  }));
  polar = await served(['emulator', '--port', '0', '--seed', seed], { home: scratch, ready: null });
  const keyFile = join(scratch, 'relay.key');
  const keygen = spawn(CLI, ['relay', 'keygen', '--out', keyFile], { stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: process.env.PATH, HOME: scratch } });
  let printed = '';
  keygen.stdout.on('data', (d) => (printed += d));
  assert.equal(await new Promise((r) => keygen.once('exit', r)), 0, 'relay keygen');
  pair = printed.trim();
  relay = await served(['--base-url', polar.url, 'relay', 'serve', '--signing-key', keyFile, '--port', '0', '--store', 'memory',
    '--per-ip', '0', '--per-key', '0', '--record-usage', '--sign-entitlements', '--refuse-at-zero-credits'],
  { home: scratch, env: { POLAR_ACCESS_TOKEN: TOKEN } });
});
after(async () => {
  await relay?.close();
  await polar?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

const report = (units, extra = {}) => recordUsage({ organizationId: ORG, relay: relay.url, key: KEY, meter: METER, units, ...extra });

test('a report counts once: the same id again, and a send whose answer was lost', { skip }, async () => {
  const first = await report(2, { id: 'npm-report-1' });
  assert.deepEqual({ id: first.id, duplicate: first.duplicate }, { id: 'npm-report-1', duplicate: false });
  const again = await report(2, { id: 'npm-report-1' });
  assert.equal(again.duplicate, true, 'the same id: recorded before');
  // The first send reaches the relay, its answer is lost (the connection "dropped"): the core
  // sends the same report again, and the relay knows its id.
  const bodies = [];
  let sends = 0;
  const lossy = async (url, init) => {
    sends += 1;
    bodies.push(JSON.parse(init.body));
    const res = await fetch(url, init);
    if (sends === 1) {
      await res.text();
      throw new TypeError('fetch failed: the answer was lost');
    }
    return res;
  };
  const lost = await report(3, { fetch: lossy });
  assert.equal(sends, 2, 'sent again once');
  assert.equal(bodies[0].id, bodies[1].id, 'the same id both times');
  assert.equal(lost.id, bodies[0].id);
  assert.match(lost.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(lost.duplicate, true, 'the second send found the first recorded');
  // The relay's balance, once it has read Polar's meter, counts each of them once: 2 + 3 and
  // the reports of 1 made meanwhile (10 credits).
  let used = 5;
  let balance = null;
  for (let n = 0; n < 100 && balance === null; n += 1) {
    const r = await report(1);
    used += 1;
    balance = r.balance;
    if (balance === null) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(balance, 10 - used, 'each report counted once');
  // Down to zero (a report crossing it is kept), then the seller's rule refuses.
  while (used < 10) {
    const r = await report(3);
    used += 3;
    assert.equal(r.balance, 10 - used);
  }
  const refused = await rejection(report(1));
  assert.ok(refused instanceof UsageError && refused instanceof LicenseError, String(refused));
  assert.equal(refused.code, 'credits_exhausted');
  assert.equal(refused.balance, 10 - used);
  assert.equal(refused.status, 402);
  assert.match(refused.id, /^[0-9a-f-]{36}$/);
  // A key Polar does not know: its denial.
  const denied = await rejection(recordUsage({ organizationId: ORG, relay: relay.url, key: 'USE-NOT-A-KEY-AT-ALL', meter: METER, units: 1 }));
  assert.equal(denied.code, 'not_found');
});

/** `fetch` through a proxy that hands the relay's answer to `edit(status, headers, body)` and
 * answers what it returns; with no relay (`fake`), `edit` makes the whole answer. */
const proxied = (edit, fake = false) => async (url, init) => {
  if (fake) {
    const [status, headers, body] = edit(200, new Headers({ 'content-type': 'application/json' }), '{}');
    return new Response(body, { status, headers });
  }
  const r = await fetch(url, init);
  const [status, headers, body] = edit(r.status, new Headers(r.headers), await r.text());
  return new Response(body, { status, headers });
};

test('signed mode believes only the relay\'s acknowledgement: a stripped token or a forged balance changes nothing', { skip }, async () => {
  const signed = (extra = {}) =>
    recordUsage({ organizationId: ORG, relay: relay.url, key: SIGNED_KEY, meter: METER, units: 1, relayKeys: [pair], ...extra });
  // Honest: recorded, its acknowledgement verified; once the relay knows the balance, it is
  // the signed one.
  let done = await signed({ id: 'npm-signed-1' });
  assert.deepEqual([done.id, done.duplicate, done.signed], ['npm-signed-1', false, true]);
  for (let n = 0; n < 100 && done.balance === null; n += 1) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    done = await signed();
  }
  assert.equal(typeof done.balance, 'number', 'the relay read the balance');
  assert.equal(done.signed, true);
  // The token stripped and a million credits written in: not recorded, no balance.
  const stripRich = proxied((status, headers, body) => {
    headers.delete('polar-license-usage');
    return [status, headers, JSON.stringify({ ...JSON.parse(body), balance: 1_000_000 })];
  });
  const stripped = await rejection(signed({ fetch: stripRich }));
  assert.ok(stripped instanceof UsageError, String(stripped));
  assert.deepEqual([stripped.code, stripped.balance], ['protocol_error', null], stripped.message);
  // The balance rewritten, the token kept: the signed balance, never the million.
  const rich = proxied((status, headers, body) => [status, headers, JSON.stringify({ ...JSON.parse(body), balance: 1_000_000 })]);
  const kept = await signed({ fetch: rich });
  assert.equal(kept.signed, true);
  assert.notEqual(kept.balance, 1_000_000);
  assert.equal(typeof kept.balance, 'number');
  // A fake relay: `recorded`, a million credits, no token.
  const fake = proxied((status, headers) => [status, headers, '{"recorded":true,"duplicate":false,"balance":1000000}'], true);
  const faked = await rejection(signed({ fetch: fake }));
  assert.deepEqual([faked.code, faked.balance], ['protocol_error', null], faked.message);
  // Without relay keys the fake answer is taken, and says it is unsigned.
  const unsigned = await recordUsage({ organizationId: ORG, relay: relay.url, key: SIGNED_KEY, meter: METER, units: 1, fetch: fake });
  assert.deepEqual([unsigned.balance, unsigned.signed], [1_000_000, false]);
  // Relay keys that are no keys: refused before anything is sent.
  for (const relayKeys of [[7], 'not a key', {}]) {
    const e = await rejection(signed({ relayKeys, fetch: fake }));
    assert.deepEqual([e.code, e.field], ['invalid_input', 'relay_keys'], `${JSON.stringify(relayKeys)}: ${e.message}`);
  }
});

test('bad input is refused before anything is sent', { skip }, async () => {
  let sends = 0;
  const counted = (...a) => {
    sends += 1;
    return fetch(...a);
  };
  for (const [meter, units, id, field] of [
    ['', 1, undefined, 'meter'],
    ['tab\there', 1, undefined, 'meter'],
    [METER, 0, undefined, 'units'],
    [METER, -1, undefined, 'units'],
    [METER, NaN, undefined, 'units'],
    [METER, Infinity, undefined, 'units'],
    [METER, -Infinity, undefined, 'units'],
    [METER, 1e10, undefined, 'units'],
    [METER, 1, 'a b', 'id'],
    [METER, 1, '', 'id'],
  ]) {
    const e = await rejection(report(units, { meter, id, fetch: counted }));
    assert.ok(e instanceof UsageError, String(e));
    assert.deepEqual([e.code, e.field], ['invalid_input', field], `${meter} ${units} ${id}: ${e.message}`);
  }
  for (const [options, field] of [
    [null, 'options'],
    [{ organizationId: ORG, relay: 'http://127.0.0.1:9', key: KEY, meter: METER, units: '1' }, 'units'],
    [{ organizationId: ORG, relay: 'http://127.0.0.1:9', key: 7, meter: METER, units: 1 }, 'key'],
    [{ organizationId: 'not-an-org', relay: 'http://127.0.0.1:9', key: KEY, meter: METER, units: 1, fetch: counted }, 'organization_id'],
  ]) {
    const e = await rejection(recordUsage(options));
    assert.deepEqual([e.code, e.field], ['invalid_input', field], e.message);
  }
  assert.equal(sends, 0, 'nothing sent');
});

const NO_EVENTS_TOKEN = 'polar_oat_emulator_noevents_0123456789ab';
const HELD_KEY = 'USE-HELD-0F1A-4B2C-9D3E-4F5A6B7C8D9E';

test('a report the relay\'s backlog holds is usage_backlog', { skip }, async () => {
  const seed = join(scratch, 'held-seed.json');
  await writeFile(seed, JSON.stringify({
    organization_id: ORG,
    access_tokens: [{ token: NO_EVENTS_TOKEN, scopes: ['license_keys:read', 'license_keys:write'] }],
    license_keys: [{ key: HELD_KEY, customer_id: CUSTOMER }],
  }));
  const heldPolar = await served(['emulator', '--port', '0', '--seed', seed], { home: scratch, ready: null });
  const keyFile = join(scratch, 'relay.key');
  const heldRelay = await served(['--base-url', heldPolar.url, 'relay', 'serve', '--signing-key', keyFile, '--port', '0', '--store', 'memory',
    '--per-ip', '0', '--per-key', '0', '--record-usage'], { home: scratch, env: { POLAR_ACCESS_TOKEN: NO_EVENTS_TOKEN } });
  try {
    const held = (extra = {}) => recordUsage({ organizationId: ORG, relay: heldRelay.url, key: HELD_KEY, meter: METER, units: 1, ...extra });
    // Nothing is ingested (the token cannot write events): 100 reports of a key fill the backlog.
    for (let n = 0; n < 100; n += 1) await held();
    const e = await rejection(held({ id: 'npm-held-101' }));
    assert.ok(e instanceof UsageError, String(e));
    assert.equal(e.code, 'usage_backlog');
    assert.equal(e.retryAfter, 60);
    assert.equal(e.id, 'npm-held-101');
  } finally {
    await heldRelay.close();
    await heldPolar.close();
  }
});
