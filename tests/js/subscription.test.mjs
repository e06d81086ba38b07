// Polar's 2027-01 subscription (issue #54 items 3-5) through the installed npm package: a
// cancelled subscription's end is the date a key was paid through (perpetual fallback), and a
// `trialing` subscription makes the key a trial ending with its period. Against an emulator
// process of its own serving API version 2027-01 (the package's `polar-license-emulator`; the
// suite's shared emulator serves the default version). (tests/seller_table.rs: the Rust face.)
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ORG, PACKAGE_DIR, mapStorage, newKey, patchKey, pkg, rejection, started, stop } from './emulator.mjs';

const { LicenseClient } = await pkg();

const DAY = 86400;
const PAID_BENEFIT = '3c5d7a1e-4f2b-4a6e-8d9c-1e0f3c2d5b4a';
const OTHER_BENEFIT = '7a1e3c5d-2b4f-4e6a-9c8d-0f1e2d3c4b5a';
const iso = (s) => new Date(s * 1000).toISOString().replace('.000Z', 'Z');
const day = (s) => iso(s).slice(0, 10);

const dir = mkdtempSync(join(tmpdir(), 'subscription-'));
const seed = join(dir, 'seed.json');
writeFileSync(seed, JSON.stringify({ organization_id: ORG, license_keys: [] }));
const polar = await started(process.execPath, [join(PACKAGE_DIR, 'emulator-cli.js'), '--port', '0', '--seed', seed, '--api-version', '2027-01'], 1);
const BASE = polar.url;
after(async () => {
  await stop(polar.child);
  rmSync(dir, { recursive: true, force: true });
});

function client(options) {
  return new LicenseClient({
    organizationId: ORG,
    baseUrl: BASE,
    storage: mapStorage(),
    gracePolicy: { revalidateAfter: 0, clockTolerance: 0 },
    ...options,
  });
}

/** Moves the emulator's clock `offset` seconds ahead (back to 0 after each test). */
async function moveClock(offset) {
  const resp = await fetch(`${BASE}/__emulator/clock`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ offset_seconds: offset }),
  });
  assert.ok(resp.ok, await resp.text());
}
afterEach(() => moveClock(0));

test('a cancelled subscription is paid through its end: an older build falls back after it', async () => {
  const now = Math.floor(Date.now() / 1000);
  const ends = now + 10 * DAY;
  const key = await newKey(
    {
      benefit_id: PAID_BENEFIT,
      subscription: { status: 'active', current_period_end: iso(ends), cancel_at_period_end: true, ends_at: iso(ends) },
    },
    BASE,
  );
  let offset = 0;
  const clock = () => (now + offset) * 1000;
  const storage = mapStorage();
  const c = client({ released: day(now), storage, clock });
  const before = await c.check(key);
  assert.equal(before.fallback, false);
  assert.equal(before.paidThrough, ends);

  // Day 11: the subscription has ended and Polar revokes the key. A build released before the
  // end stays licensed, through the end the subscription stated.
  offset = 11 * DAY;
  await moveClock(offset);
  await patchKey(key, { status: 'revoked' }, BASE);
  const fell = await c.check(key);
  assert.equal(fell.fallback, true);
  assert.equal(fell.source, 'online');
  assert.equal(fell.paidThrough, ends);
  // A build released after it is denied, with the date it was paid through.
  const newer = await rejection(client({ released: day(ends + DAY), storage, clock }).check(key));
  assert.equal(newer.code, 'inactive');
  assert.equal(newer.fallback, false);
  assert.equal(newer.paidThrough, ends);
});

test('a subscription that renews is no end: a revoked key never falls back', async () => {
  const now = Math.floor(Date.now() / 1000);
  const key = await newKey(
    { benefit_id: PAID_BENEFIT, subscription: { status: 'active', current_period_end: iso(now + 10 * DAY) } },
    BASE,
  );
  const c = client({ released: day(now - 30 * DAY) });
  assert.equal((await c.check(key)).paidThrough, null);
  await patchKey(key, { status: 'revoked' }, BASE);
  const e = await rejection(c.check(key));
  assert.equal(e.code, 'inactive');
  assert.equal(e.fallback, false);
});

test('a trialing subscription is a trial ending with its period', async () => {
  const now = Math.floor(Date.now() / 1000);
  const ends = now + 5 * DAY - 3600;
  const key = await newKey(
    { benefit_id: PAID_BENEFIT, subscription: { status: 'trialing', current_period_end: iso(ends) } },
    BASE,
  );
  // The app names a trial product, not this key's benefit: the subscription makes it a trial.
  const got = await client({ trialBenefit: OTHER_BENEFIT }).check(key);
  assert.equal(got.license.benefitId, PAID_BENEFIT);
  assert.deepEqual(got.trial, { local: false, state: 'active', startedAt: null, endsAt: ends, daysLeft: 5 });
  // A local trial stated reports it too (the app of the seller row trialing_subscription).
  assert.equal((await client({ trial: 14 }).check(key)).trial?.endsAt, ends);

  const active = await newKey(
    { benefit_id: PAID_BENEFIT, subscription: { status: 'active', current_period_end: iso(ends) } },
    BASE,
  );
  assert.equal((await client({ trialBenefit: OTHER_BENEFIT }).check(active)).trial, null);
  // No trial stated: the answer as before, without `trial`.
  assert.equal('trial' in (await client({}).check(key)), false);
});
