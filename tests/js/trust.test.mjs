// The trust rules of issue #12 through the installed npm package, each played the way an
// attacker or an unlucky user would: a record put back after a revocation, a clock held still,
// a captive portal, a proxy's page, a bare 404, a 200 that says "not valid", activate then
// offline, a revocation seen by validate(), checks while Polar hangs, a storage that cannot be
// written, a 10-year retry-after, requireActivation, and records shared with the native face
// (the `polar-license` command line) both ways.
//
// Against the emulator of this file alone (POLAR_TRUST_URL: its faults and request counts are
// its own), over loopback; hostile answers come from its `respond` fault (exactly a status,
// headers and a body, with none of Polar's headers).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, ORG, TRUST, mapStorage, newKey, patchKey, pkg, rejection, requestCount, setFault } from './emulator.mjs';

const { LicenseClient } = await pkg();
const run = promisify(execFile);

if (!TRUST) throw new Error('POLAR_TRUST_URL is not set: run scripts/test-wasm.sh');

const MIN = 60_000;
const HOUR = 60 * MIN;
const ALWAYS_ASK = { revalidateAfter: 0 };

after(() => setFault(null, TRUST));

/** A client of the trust emulator; `clock` is a function of milliseconds. */
function client(options = {}) {
  return new LicenseClient({ organizationId: ORG, baseUrl: TRUST, storage: 'memory', ...options });
}

const fault = (f) => setFault(f, TRUST);
const key = (fields = {}) => newKey(fields, TRUST);

/** Counts the requests the trust emulator receives between calls. */
async function counter() {
  let seen = await requestCount(TRUST);
  return async () => {
    const now = await requestCount(TRUST);
    const n = now - seen;
    seen = now;
    return n;
  };
}

/** What the emulator answers a validate of `k` (Polar's own 200 body, snake_case). */
async function validateBody(k) {
  const resp = await fetch(`${TRUST}/v1/customer-portal/license-keys/validate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key: k, organization_id: ORG }),
  });
  assert.equal(resp.status, 200);
  return resp.json();
}

/** A `respond` fault: exactly this status, these headers and this body. */
const respond = (status, headers, body) => ({ kind: 'respond', status, headers, body });
const json200 = (body) => respond(200, [['content-type', 'application/json']], JSON.stringify(body));

/** The storage name of `k`'s record (the engine's `polar-license.v2-…`), found by its ledger. */
function recordName(storage) {
  const ledger = [...storage.map.keys()].find((n) => n.endsWith('-seq'));
  assert.ok(ledger, 'a ledger is stored');
  return ledger.slice(0, -'-seq'.length);
}

test('a record put back after a revocation is not trusted (replay)', async () => {
  const k = await key();
  const storage = mapStorage();
  const t0 = Date.now();
  let now = t0;
  const c = client({ storage, clock: () => now });
  const requests = await counter();
  assert.equal((await c.check(k)).source, 'online');
  const name = recordName(storage);
  const saved = storage.map.get(name);

  // Polar revokes the key; a stale check sees it and writes the tombstone.
  await patchKey(k, { status: 'revoked' }, TRUST);
  now = t0 + 2 * HOUR;
  assert.equal((await rejection(c.check(k))).code, 'inactive');
  // The saved good record put back, the clock set to 30 minutes after the verdict: a fresh
  // verdict by its own dates, but older than the ledger.
  storage.map.set(name, saved);
  now = t0 + 30 * MIN;
  assert.equal((await c.status(k)).untrusted, 'replayed');
  await requests();
  const e = await rejection(c.check(k));
  assert.equal(e.code, 'inactive', 'the replayed record licensed the revoked key');
  assert.equal(await requests(), 1, 'Polar was asked, the cache did not answer');
});

test('a clock held still stops answering from the cache after 32 answers', async () => {
  const k = await key();
  const storage = mapStorage();
  const t0 = Date.now();
  assert.equal((await client({ storage, clock: () => t0 }).check(k)).source, 'online');
  await patchKey(k, { status: 'revoked' }, TRUST);
  const requests = await counter();
  // Each launch of the app is a new client over the same storage, the clock held 30 minutes
  // after the verdict (inside the fresh window): 33 answers from the cache (the first moves
  // the record to the held time, then 32 at a clock that does not move)…
  const held = t0 + 30 * MIN;
  const launch = () => client({ storage, clock: () => held }).check(k);
  for (let i = 0; i <= 32; i++) {
    assert.equal((await launch()).source, 'cache', `launch ${i}`);
  }
  assert.equal(await requests(), 0);
  // …then the next asks Polar, which says the key is revoked.
  assert.equal((await rejection(launch())).code, 'inactive');
  assert.equal(await requests(), 1);

  // With Polar unreachable, a held clock no longer licenses (clock_rollback) until it moves.
  const k2 = await key();
  const s2 = mapStorage();
  assert.equal((await client({ storage: s2, clock: () => t0 }).check(k2)).source, 'online');
  for (let i = 0; i <= 32; i++) await client({ storage: s2, clock: () => held }).check(k2);
  await fault({ kind: 'close_immediately' });
  try {
    const stalled = await rejection(client({ storage: s2, clock: () => held }).check(k2));
    assert.equal(stalled.code, 'clock_rollback');
    const moved = await client({ storage: s2, clock: () => held + 1000 }).check(k2);
    assert.equal(moved.source, 'cache');
  } finally {
    await fault(null);
  }
});

test("a burst of one client's checks within a second counts once (no false lockout)", async () => {
  // A menu asking one feature after another while offline must not look like a held clock.
  const k = await key();
  const storage = mapStorage();
  const t0 = Date.now();
  const c = client({ storage, clock: () => t0 + 30 * MIN });
  assert.equal((await client({ storage, clock: () => t0 }).check(k)).source, 'online');
  await fault({ kind: 'close_immediately' });
  try {
    for (let i = 0; i < 40; i++) assert.equal((await c.check(k)).source, 'cache', `check ${i}`);
  } finally {
    await fault(null);
  }
});

test('a captive portal, a proxy page or a bare 404 falls back to a good cache and never tombstones', async () => {
  const k = await key();
  const storage = mapStorage();
  const c = client({ storage, gracePolicy: ALWAYS_ASK });
  const verified = await c.check(k);
  const proxyAuth = respond(407, [['proxy-authenticate', 'Basic realm="corp"']], 'Proxy Authentication Required');
  const pages = [
    ['captive portal 200', respond(200, [['content-type', 'text/html']], '<html>login</html>')],
    ['redirect to a login page', respond(302, [['location', 'http://portal.example/login']], '')],
    // The Fetch standard makes a 407 a network error where there is no proxy to answer it.
    ['proxy authentication', proxyAuth, 'offline'],
    ['bare 404 (a wrong base path)', { kind: 'status', status: 404, body: '{"detail":"Not Found"}' }],
    ['a CDN 403 page', respond(403, [['content-type', 'text/html']], '<h1>403 Forbidden</h1>')],
    ['empty 200', respond(200, [], '')],
  ];
  for (const [what, page, reason = 'protocol_error'] of pages) {
    await fault(page);
    try {
      const cached = await c.check(k);
      assert.deepEqual([cached.source, cached.reason], ['cache', reason], what);
      assert.equal(cached.verifiedAt, verified.verifiedAt, what);
      const v = await rejection(c.validate(k));
      assert.equal(v.code, reason, `${what}: validate`);
    } finally {
      await fault(null);
    }
    const status = await c.status(k);
    assert.deepEqual([status.state, status.denied], ['present', null], `${what} wrote a tombstone`);
  }
  assert.equal((await c.check(k)).source, 'online');
  // A base URL with a wrong path: Polar's routes answer a bare 404, never a denial.
  const misrouted = await rejection(client({ baseUrl: `${TRUST}/v1` }).validate(k));
  assert.deepEqual([misrouted.code, misrouted.status], ['protocol_error', 404]);
});

test('a 200 for a revoked or expired license, or for another key, is protocol_error', async () => {
  const k = await key();
  const other = await key();
  const body = await validateBody(k);
  const storage = mapStorage();
  const c = client({ storage, gracePolicy: ALWAYS_ASK });
  const verified = await c.check(k);
  const lies = [
    ['revoked', { ...body, status: 'revoked' }],
    ['disabled', { ...body, status: 'disabled' }],
    ['expired', { ...body, expires_at: '2020-01-01T00:00:00Z' }],
    ['another key', await validateBody(other)],
    ['another organization', { ...body, organization_id: '9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d' }],
  ];
  for (const [what, lie] of lies) {
    await fault(json200(lie));
    try {
      const cached = await c.check(k);
      assert.deepEqual([cached.source, cached.reason], ['cache', 'protocol_error'], what);
      assert.equal(cached.verifiedAt, verified.verifiedAt, what);
      const bare = await rejection(client().check(k));
      assert.equal(bare.code, 'protocol_error', `${what}, no cache`);
      const v = await rejection(c.validate(k));
      assert.equal(v.code, 'protocol_error', `${what}: validate`);
    } finally {
      await fault(null);
    }
  }
  assert.equal((await c.status(k)).denied, null);
});

test('activate, then offline: licensed from the cache', async () => {
  const k = await key();
  const storage = mapStorage();
  const c = client({ storage, machineId: 'machine-a' });
  const requests = await counter();
  const { activation } = await c.activate(k, { label: 'laptop' });
  assert.equal(await requests(), 1);
  // The activation is a verdict: the check right after it is fresh, with no request.
  const right = await c.check(k);
  assert.deepEqual([right.source, right.activation.id, right.reason], ['cache', activation.id, null]);
  assert.equal(await requests(), 0);
  await fault({ kind: 'close_immediately' });
  try {
    const offline = await client({ storage, machineId: 'machine-a', gracePolicy: ALWAYS_ASK }).check(k);
    assert.deepEqual([offline.source, offline.reason, offline.activation.id], ['cache', 'offline', activation.id]);
    assert.ok(offline.graceRemaining > 6 * 86400);
  } finally {
    await fault(null);
  }
});

test('validate() binds this machine and a revocation it sees makes the next check deny', async () => {
  const k = await key();
  const storage = mapStorage();
  const c = client({ storage, machineId: 'machine-a' });
  const { activation } = await c.activate(k, { label: 'a', conditions: { machine: 'abc' } });
  // The same conditions as activate, on the same machine: licensed (the fingerprint activate
  // added is added here too), not conditions_mismatch.
  const same = await c.validate(k, { activationId: activation.id, conditions: { machine: 'abc' } });
  assert.equal(same.activation.id, activation.id);
  assert.equal((await c.check(k)).source, 'cache');

  assert.equal((await c.status(k)).standing, 'licensed');
  await patchKey(k, { status: 'revoked' }, TRUST);
  assert.equal((await rejection(c.validate(k))).code, 'inactive');
  // The status says so at once: no license shown as the key's status since the denial.
  const status = await c.status(k);
  assert.deepEqual([status.standing, status.license, status.graceRemaining, status.denied.code],
    ['denied', null, null, 'inactive']);
  assert.equal(typeof status.verifiedAt, 'number');
  // The cache was fresh: without one truth per key it would still say licensed (cache).
  assert.equal((await rejection(c.check(k))).code, 'inactive');
  await fault({ kind: 'close_immediately' });
  try {
    const offline = await rejection(c.check(k));
    assert.equal(offline.code, 'offline');
  } finally {
    await fault(null);
  }
  assert.equal((await c.status(k)).denied.code, 'inactive');
});

test('while one check waits for a hung Polar, another answers from the cache at once', async () => {
  const k = await key();
  const storage = mapStorage();
  await client({ storage }).check(k);
  // Two clients (two windows of one app) over the same storage, each asking Polar.
  const a = client({ storage, timeout: 2, gracePolicy: ALWAYS_ASK });
  const b = client({ storage, timeout: 2, gracePolicy: ALWAYS_ASK });
  await fault({ kind: 'hang' });
  try {
    const started = Date.now();
    const timed = (p) => p.then((r) => ({ r, ms: Date.now() - started }));
    const [first, second] = await Promise.all([timed(a.check(k)), timed(b.check(k))]);
    assert.deepEqual([second.r.source, second.r.reason], ['cache', null]);
    assert.ok(second.ms < 1000, `the second check waited ${second.ms} ms`);
    // The one that asked waited for the timeout, then fell back to the cache too.
    assert.deepEqual([first.r.source, first.r.reason], ['cache', 'offline']);
    assert.ok(first.ms >= 1900, `the first check answered after ${first.ms} ms`);
  } finally {
    await fault(null);
  }
});

test('a storage whose set() throws: licensed with cacheRefreshed false, asking Polar rather than answering fresh', async () => {
  const k = await key();
  const storage = mapStorage();
  const c = client({ storage });
  assert.equal((await c.check(k)).source, 'online');
  const name = recordName(storage);
  const set = storage.set;
  storage.set = () => {
    throw new Error('QuotaExceededError');
  };
  const requests = await counter();
  // Fresh, but the answer cannot be recorded: not given as fresh, Polar is asked.
  const asked = await c.check(k);
  assert.deepEqual([asked.source, asked.cacheRefreshed], ['online', false]);
  assert.equal(await requests(), 1);
  await fault({ kind: 'close_immediately' });
  try {
    const cached = await c.check(k);
    assert.deepEqual([cached.source, cached.reason, cached.cacheRefreshed], ['cache', 'offline', false]);
  } finally {
    await fault(null);
  }
  // A denial that cannot be written removes the record: no old grant is left behind.
  await patchKey(k, { status: 'revoked' }, TRUST);
  const denied = await rejection(c.check(k));
  assert.deepEqual([denied.code, denied.cacheRefreshed], ['inactive', false]);
  assert.equal(storage.map.has(name), false, 'the good record is still there');
  storage.set = set;
  await fault({ kind: 'close_immediately' });
  try {
    assert.equal((await rejection(c.check(k))).code, 'offline');
  } finally {
    await fault(null);
  }
});

test('retry-after 315360000 is capped at one hour', async () => {
  const k = await key();
  const t0 = Date.now();
  let now = t0;
  const c = client({ storage: mapStorage(), clock: () => now });
  await fault({ kind: 'rate_limited', retry_after: 315360000 });
  let e;
  try {
    e = await rejection(c.check(k));
  } finally {
    await fault(null);
  }
  assert.deepEqual([e.code, e.retryAfter], ['rate_limited', 3600]);
  const status = await c.status(k);
  assert.equal(status.blockedUntil - status.now, 3600);
  const requests = await counter();
  now = t0 + HOUR - 1000;
  assert.equal((await rejection(c.check(k))).code, 'rate_limited');
  assert.equal(await requests(), 0, 'a request within the block');
  now = t0 + HOUR + 1000;
  assert.equal((await c.check(k)).source, 'online');
  assert.equal(await requests(), 1);
});

test('requireActivation holds, even over a bare-key verdict in the cache', async () => {
  const k = await key();
  const storage = mapStorage();
  assert.equal((await client({ storage }).check(k)).source, 'online');
  const strict = client({ storage, requireActivation: true, machineId: 'machine-a' });
  const requests = await counter();
  const refused = await rejection(strict.check(k));
  assert.deepEqual([refused.code, refused.field], ['invalid_input', 'activation_id']);
  const feature = await rejection(strict.hasFeature(k, 'pro'));
  assert.equal(feature.field, 'activation_id');
  assert.equal(await requests(), 0);
  const { activation } = await strict.activate(k, { label: 'a' });
  const checked = await strict.check(k);
  assert.deepEqual([checked.source, checked.activation.id], ['cache', activation.id]);
});

// ---- The native face: records written by the command line, read here, and the reverse --------

/** This machine's id as the native face reads it on Linux (its records are sealed with it). */
function osMachineId() {
  for (const path of ['/etc/machine-id', '/var/lib/dbus/machine-id', '/etc/hostid']) {
    try {
      const text = readFileSync(path, 'utf8').trim();
      if (text) return text;
    } catch {
      // the next one
    }
  }
  return undefined;
}

const SECRET = 'polar-license.install-secret';

/**
 * A storage adapter over the native cache directory: `polar-license.<slot>` is the file
 * `<slot>.cache`, the install secret the 32 bytes of `install-secret` (hex here).
 */
function dirStorage(dir) {
  const file = (name) =>
    name === SECRET ? join(dir, 'install-secret') : join(dir, `${name.slice('polar-license.'.length)}.cache`);
  return {
    async get(name) {
      try {
        const bytes = await readFile(file(name));
        return name === SECRET ? bytes.toString('hex') : bytes.toString('utf8');
      } catch (e) {
        if (e.code === 'ENOENT') return null;
        throw e;
      }
    },
    async set(name, value) {
      await mkdir(dir, { recursive: true });
      await writeFile(file(name), name === SECRET ? Buffer.from(value, 'hex') : value);
    },
    remove: (name) => rm(file(name), { force: true }),
  };
}

/** Runs the native command line on `dir` for `k`; its `--json` object. */
async function native(dir, k, ...args) {
  const [command, ...rest] = args;
  const argv = [command, '--org', ORG, '--base-url', TRUST, '--cache-dir', dir, '--key', k, '--json', ...rest];
  try {
    const { stdout } = await run(CLI, argv, { timeout: 30_000 });
    return JSON.parse(stdout);
  } catch (e) {
    if (typeof e.stdout === 'string' && e.stdout.startsWith('{')) return JSON.parse(e.stdout);
    throw e;
  }
}

const linux = process.platform === 'linux' && CLI ? false : 'needs the native command line (POLAR_CLI) on Linux';

test('records written by the native face are read here, with their ledger, and the reverse', { skip: linux }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-cross-'));
  try {
    const k = await key({ limit_activations: 3 });
    const storage = dirStorage(dir);
    const js = (options = {}) => client({ storage, machineId: osMachineId(), ...options });
    const requests = await counter();

    // The command line checks online: a v2 record and its ledger in the directory.
    const first = await native(dir, k, 'check');
    assert.deepEqual([first.outcome, first.source], ['licensed', 'online']);
    assert.equal(await requests(), 1);
    assert.equal((await js().status(k)).state, 'present', 'the native record is not trusted here');
    const name = await recordFile(dir);
    const nativeRecord = await readFile(join(dir, name), 'utf8');

    // Read here: fresh, no request (and the answer is recorded: the record and ledger move on).
    const cached = await js().check(k);
    assert.deepEqual([cached.source, cached.license.key], ['cache', k]);
    assert.equal(await requests(), 0);

    // The command line reads what this face wrote, and answers from it.
    const status = await native(dir, k, 'status');
    assert.equal(status.cache.state, 'present');
    const again = await native(dir, k, 'check');
    assert.deepEqual([again.outcome, again.source], ['licensed', 'cache']);
    assert.equal(await requests(), 0);

    // The native face's older record put back is replayed, for both faces.
    const current = await readFile(join(dir, name), 'utf8');
    await writeFile(join(dir, name), nativeRecord);
    assert.equal((await native(dir, k, 'status')).cache.untrusted, 'replayed');
    assert.equal((await js().status(k)).untrusted, 'replayed');
    await writeFile(join(dir, name), current);

    // An activation made here (machine-bound with the OS machine id, as natively) is the one
    // the command line validates, from the cache: the same fingerprint, the same seal.
    const { activation } = await js().activate(k, { label: 'cross' });
    const checked = await native(dir, k, 'check');
    assert.deepEqual([checked.outcome, checked.source, checked.activation_id], ['licensed', 'cache', activation.id]);
    const online = await native(dir, k, 'check', '--revalidate-after', '0');
    assert.deepEqual([online.outcome, online.source, online.activation_id], ['licensed', 'online', activation.id]);
    assert.equal((await js({ gracePolicy: ALWAYS_ASK }).check(k)).activation.id, activation.id);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** The record file in a native cache directory (`v2-<hex>.cache`). */
async function recordFile(dir) {
  const names = (await readdir(dir)).filter((n) => /^v2-[0-9a-f]{32}\.cache$/.test(n));
  assert.equal(names.length, 1, `${names}`);
  return names[0];
}
