// checkInBackground on the npm face, as natively (Licensing::check_in_background, C
// polar_license_client_check_in_background): the answer comes at once from what is stored while
// Polar is asked (here: a relay that hangs, then answers), and onFresh gets the fresh answer
// once. Nothing usable stored: not_yet_verified, never `offline`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EMULATOR, ORG, mapStorage, newKey, pkg, rejection, relay } from './emulator.mjs';

const { LicenseClient } = await pkg();
const HOUR = 3600;

/** A client on `url` whose clock the test moves (seconds). */
function client(url, storage, clock) {
  return new LicenseClient({ organizationId: ORG, baseUrl: url, storage, clock: () => clock.now * 1000, timeout: 1 });
}

/** onFresh as a promise of `[error, result]`, and how many times it was called. */
function fresh() {
  let deliver;
  const settled = new Promise((ok) => (deliver = ok));
  const calls = { count: 0 };
  const onFresh = (error, result) => {
    calls.count += 1;
    deliver([error, result]);
  };
  return { settled, onFresh, calls };
}

test('nothing stored: not_yet_verified at once, then the fresh answer', async () => {
  const polar = await relay(EMULATOR);
  try {
    const key = await newKey();
    const clock = { now: 1_790_000_000 };
    const c = client(polar.url, mapStorage(), clock);
    polar.mode = 'hang';
    const f = fresh();
    const started = Date.now();
    const now = await rejection(c.checkInBackground(key, f.onFresh));
    assert.ok(Date.now() - started < 2000, 'answered at once, not after the timeout');
    assert.deepEqual([now.code, now.kind, now.pending], ['not_yet_verified', 'unverified', true]);
    // Polar hangs: the fresh answer is the timeout (1 s), `offline`, nothing cached to fall to.
    const [error, result] = await f.settled;
    assert.equal(result, undefined);
    assert.equal(error.code, 'offline', error.message);
    assert.equal(f.calls.count, 1);

    polar.mode = 'up';
    const g = fresh();
    await rejection(c.checkInBackground(key, g.onFresh)).then((e) => assert.equal(e.code, 'not_yet_verified'));
    const [error2, result2] = await g.settled;
    assert.equal(error2, null);
    assert.deepEqual([result2.source, result2.license.key], ['online', key]);
    assert.equal(typeof result2.hasFeature, 'function');
  } finally {
    await polar.close();
  }
});

test('a stale cache licenses at once within the grace while Polar is asked; a fresh one asks nothing', async () => {
  const polar = await relay(EMULATOR);
  try {
    const key = await newKey();
    const clock = { now: 1_790_000_000 };
    const storage = mapStorage();
    const c = client(polar.url, storage, clock);
    assert.equal((await c.check(key)).source, 'online');

    // Fresh: answered from the cache, nothing pending, onFresh never called.
    const f = fresh();
    const before = polar.requests;
    const now = await c.checkInBackground(key, f.onFresh);
    assert.deepEqual([now.source, now.pending], ['cache', false]);
    await new Promise((ok) => setTimeout(ok, 50));
    assert.equal(f.calls.count, 0);
    assert.equal(polar.requests, before);

    // Stale, Polar down: the cache's answer at once, the fresh one offline (from the cache).
    clock.now += 2 * HOUR;
    polar.mode = 'down';
    const g = fresh();
    const stale = await c.checkInBackground(key, g.onFresh);
    assert.deepEqual([stale.source, stale.pending], ['cache', true]);
    const [error, result] = await g.settled;
    assert.equal(error, null);
    assert.deepEqual([result.source, result.reason], ['cache', 'offline']);

    // Revoked meanwhile: the cache still answers at once; the fresh answer is the denial, and
    // the next immediate answer is the cached denial.
    polar.mode = 'up';
    clock.now += 2 * HOUR;
    await fetch(`${EMULATOR}/__emulator/keys/${key}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'revoked' }),
    }).then((r) => assert.equal(r.status, 200));
    const h = fresh();
    const cached = await c.checkInBackground(key, h.onFresh);
    assert.deepEqual([cached.source, cached.pending], ['cache', true]);
    const [denied] = await h.settled;
    assert.equal(denied.code, 'inactive');
    // The stored denial answers at once (never a grant from the cache); Polar is asked again,
    // as every check of a denied key does (a key restored by the seller licenses again).
    const i = fresh();
    const after = await rejection(c.checkInBackground(key, i.onFresh));
    assert.deepEqual([after.code, after.pending], ['inactive', true]);
    assert.equal((await i.settled)[0].code, 'inactive');
  } finally {
    await polar.close();
  }
});

test('checkInBackground checks its arguments and takes the remembered key', async () => {
  const c = client(EMULATOR, mapStorage(), { now: 1_790_000_000 });
  const bad = await rejection(c.checkInBackground('K-1'));
  assert.deepEqual([bad.code, bad.field], ['invalid_input', 'onFresh']);
  const none = await rejection(c.checkInBackground(undefined, () => {}));
  assert.deepEqual([none.code, none.field], ['invalid_input', 'key']);
  const key = await newKey();
  await c.rememberKey(key);
  const f = fresh();
  await rejection(c.checkInBackground(undefined, f.onFresh));
  const [error, result] = await f.settled;
  assert.equal(error, null);
  assert.equal(result.license.key, key);
});
