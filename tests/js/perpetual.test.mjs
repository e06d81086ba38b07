// Perpetual fallback (issue #54 item 3) through the installed npm package: the client's
// `released` option states the build's release date; an expired key then still licenses a
// build released on or before the date it was paid through (`fallback: true`, `paidThrough`),
// a newer build is `expired` as without it, a revoked key never falls back, and a cached
// `expiresAt` passed while Polar cannot be reached falls back from the cache; a denial of a
// build released after the paid-through date carries that date (`fallback: false`). Against the
// suite's emulator (POLAR_EMULATOR_URL) over loopback. (tests/perpetual.rs: the Rust face.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EMULATOR, ORG, mapStorage, newKey, patchKey, pkg, rejection } from './emulator.mjs';

const { LicenseClient } = await pkg();

const DAY = 86400;
const iso = (s) => new Date(s * 1000).toISOString().replace('.000Z', 'Z');
const day = (s) => iso(s).slice(0, 10);

/** A client of the emulator on `storage`, asking Polar at every check, for a build released
 * on `released`, its clock `offset` seconds ahead, through `fetchFn` (default: the real one). */
function client(storage, released, offset = 0, fetchFn = undefined) {
  return new LicenseClient({
    organizationId: ORG,
    baseUrl: EMULATOR,
    storage,
    gracePolicy: { revalidateAfter: 0, clockTolerance: 0 },
    clock: () => Date.now() + offset * 1000,
    ...(released === undefined ? {} : { released }),
    ...(fetchFn === undefined ? {} : { fetch: fetchFn }),
  });
}

test('an expired key licenses older builds online, newer ones are expired, revoked never', async () => {
  const now = Math.floor(Date.now() / 1000);
  const expires = now + DAY;
  const key = await newKey({ expires_at: iso(expires) });
  const storage = mapStorage();
  const old = client(storage, day(now - 10 * DAY));
  const plain = client(storage);

  const before = await old.check(key);
  assert.equal(before.fallback, false);
  assert.equal(before.paidThrough, expires);
  const unstated = await plain.check(key);
  assert.equal('fallback' in unstated || 'paidThrough' in unstated, false);

  // The seller ends the key now: Polar says "License key has expired.".
  await patchKey(key, { expires_at: iso(now - 60) });
  const fell = await old.check(key);
  assert.equal(fell.fallback, true);
  assert.equal(fell.source, 'online');
  assert.equal(fell.license.key, key);
  assert.ok(fell.paidThrough >= now - 120 && fell.paidThrough < expires, `${fell.paidThrough}`);

  assert.equal((await rejection(plain.check(key))).code, 'expired');
  assert.equal((await rejection(client(storage, day(expires + 2 * DAY)).check(key))).code, 'expired');

  await patchKey(key, { status: 'revoked' });
  assert.equal((await rejection(old.check(key))).code, 'inactive');
});

test('a denial carries the paid-through date when a release date is stated', async () => {
  const now = Math.floor(Date.now() / 1000);
  const key = await newKey({ expires_at: iso(now + DAY) });
  const storage = mapStorage();
  // A build released after the key's end: licensed while it lasts.
  const newer = client(storage, day(now + 2 * DAY));
  assert.equal((await newer.check(key)).fallback, false);
  // The seller ends the key now: denied, with the date it was paid through (for the upgrade).
  await patchKey(key, { expires_at: iso(now - 60) });
  const e = await rejection(newer.check(key));
  assert.equal(e.code, 'expired');
  assert.equal(e.fallback, false);
  assert.ok(e.paidThrough >= now - 120 && e.paidThrough <= now + DAY, `${e.paidThrough}`);
  // No release date stated: the denial as before.
  const plain = await rejection(client(storage).check(key));
  assert.equal(plain.code, 'expired');
  assert.equal('fallback' in plain || 'paidThrough' in plain, false);
});

test('a cached expiry passed while Polar cannot be reached falls back from the cache', async () => {
  const now = Math.floor(Date.now() / 1000);
  const expires = now + DAY;
  const key = await newKey({ expires_at: iso(expires) });
  const storage = mapStorage();
  assert.equal((await client(storage, day(now)).check(key)).fallback, false);

  const offline = () => Promise.reject(new TypeError('fetch failed'));
  const later = await client(storage, day(now), 2 * DAY, offline).check(key);
  assert.equal(later.fallback, true);
  assert.equal(later.source, 'cache');
  assert.equal(later.paidThrough, expires);
  assert.equal(later.reason, 'offline');
  assert.ok(later.graceRemaining > 4 * DAY && later.graceRemaining <= 5 * DAY, `${later.graceRemaining}`);

  assert.equal((await rejection(client(storage, undefined, 2 * DAY, offline).check(key))).code, 'offline');
  assert.equal((await rejection(client(storage, day(now), 8 * DAY, offline).check(key))).code, 'offline');
});

test('a release date that is no date is invalid_input, field released', async () => {
  for (const bad of ['2026-02-30', '2026-13-01', '10/01/2026', 20261001]) {
    const e = await rejection(client(mapStorage(), bad).check('ANY-KEY'));
    assert.deepEqual([e.code, e.field], ['invalid_input', 'released'], String(bad));
  }
});
