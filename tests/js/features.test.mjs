// Feature gating through the installed package, against the emulator: the `features` option,
// `verdict.hasFeature(name)` on what check() and validate() resolve, and
// `client.hasFeature(key, name)`, for the cases one by one (the benefits are those of
// tests/features.rs; keys are added at run time with those benefits).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEAD, EMULATOR, FAULT, ORG, newKey, pkg, rejection, setFault } from './emulator.mjs';

const { LicenseClient, LicenseError } = await pkg();

const PRO = '0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d';
const TEAM = '1c2d3e4f-5061-4b7c-9d8e-0f1a2b3c4d5e';
const BASIC = '2d3e4f50-6172-4c8d-ae9f-1a2b3c4d5e6f';
const DAY = 86400_000;

const features = {
  pro_export: [PRO, TEAM],
  team_sync: [TEAM],
  api_calls: { benefits: [PRO], metered: true },
};

function client(options = {}) {
  return new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory', features, ...options });
}

function answer(feature, fields) {
  return { feature, granted: false, licenseReason: null, remainingUsage: null, source: 'online', ...fields };
}

test('granted by one of several benefits, not by another, and unknown features', async () => {
  const c = client();
  const pro = await c.check(await newKey({ benefit_id: PRO }));
  const team = await c.check(await newKey({ benefit_id: TEAM }));
  const basic = await c.check(await newKey({ benefit_id: BASIC }));

  assert.deepEqual(pro.hasFeature('pro_export'), answer('pro_export', { granted: true, why: 'granted' }));
  assert.equal(team.hasFeature('pro_export').granted, true);
  assert.equal(team.hasFeature('team_sync').granted, true);

  assert.deepEqual(pro.hasFeature('team_sync'), answer('team_sync', { why: 'not_granted_by_benefit' }));
  assert.deepEqual(basic.hasFeature('pro_export'), answer('pro_export', { why: 'not_granted_by_benefit' }));
  assert.deepEqual(pro.hasFeature('time_travel'), answer('time_travel', { why: 'unknown_feature' }));
  // Names are exact, and the prototype is no feature.
  assert.equal(pro.hasFeature('Pro_Export').why, 'unknown_feature');
  assert.equal(pro.hasFeature('toString').why, 'unknown_feature');
  assert.equal(pro.hasFeature('__proto__').why, 'unknown_feature');

  // The verdict stays plain data: hasFeature is not enumerable and answers are copies.
  assert.deepEqual(Object.keys(pro).sort(), [
    'activation',
    'cacheRefreshed',
    'entitlements',
    'graceEndsAt',
    'graceRemaining',
    'lease',
    'license',
    'reason',
    'relaySource',
    'source',
    'userMessage',
    'verifiedAt',
  ]);
  assert.equal(JSON.parse(JSON.stringify(pro)).hasFeature, undefined);
  assert.equal(structuredClone(pro).license.benefitId, PRO);
  pro.hasFeature('pro_export').granted = false;
  assert.equal(pro.hasFeature('pro_export').granted, true);
  assert.throws(() => pro.hasFeature(42), (e) => e instanceof LicenseError && e.field === 'feature');

  // validate() answers too, always online.
  const validated = await c.validate(await newKey({ benefit_id: TEAM }));
  assert.deepEqual(validated.hasFeature('team_sync'), answer('team_sync', { granted: true, why: 'granted' }));
});

test('client.hasFeature checks and answers, in one call', async () => {
  const c = client();
  const key = await newKey({ benefit_id: TEAM });
  assert.deepEqual(await c.hasFeature(key, 'team_sync'), answer('team_sync', { granted: true, why: 'granted' }));
  // The second check is answered by the fresh cached verdict.
  assert.deepEqual(
    await c.hasFeature(key, 'api_calls'),
    answer('api_calls', { why: 'not_granted_by_benefit', source: 'cache' }),
  );
  assert.equal((await c.hasFeature(key, 'nope')).why, 'unknown_feature');
});

test('a denied license grants nothing', async () => {
  const c = client();
  const key = await newKey({ benefit_id: PRO, status: 'revoked' });
  const denied = await rejection(c.check(key));
  assert.equal(denied.code, 'inactive');
  for (const feature of ['pro_export', 'api_calls', 'time_travel']) {
    assert.deepEqual(await c.hasFeature(key, feature), {
      feature,
      granted: false,
      why: 'license_not_valid',
      licenseReason: 'inactive',
      remainingUsage: null,
      source: null,
    });
  }
  const expired = await newKey({ benefit_id: PRO, expires_at: '2024-01-01T00:00:00Z' });
  assert.equal((await c.hasFeature(expired, 'pro_export')).licenseReason, 'expired');
});

test('an unverified license grants nothing; only error-kind reasons reject', async () => {
  const offline = client({ baseUrl: DEAD });
  const a = await offline.hasFeature('JS-NEVER-SEEN', 'pro_export');
  assert.deepEqual(
    [a.granted, a.why, a.licenseReason, a.source],
    [false, 'license_not_valid', 'offline', null],
  );
  for (const [key, name, field] of [
    ['', 'pro_export', 'key'],
    [42, 'pro_export', 'key'],
    ['K', 42, 'feature'],
  ]) {
    const e = await rejection(client().hasFeature(key, name));
    assert.ok(e instanceof LicenseError);
    assert.deepEqual([e.code, e.kind, e.field], ['invalid_input', 'error', field]);
  }
});

test('a cached verdict within the grace answers as an online one', async () => {
  assert.ok(FAULT, 'POLAR_FAULT_URL is set');
  const key = await newKey({ benefit_id: PRO, limit_usage: 10, usage: 7 }, FAULT);
  let now = Date.now();
  const c = client({ baseUrl: FAULT, clock: () => now });
  const online = await c.check(key);
  assert.equal(online.source, 'online');

  // Every connection closed at once, three days later: the cache answers.
  await setFault({ kind: 'close_immediately' });
  let cached;
  let expired;
  try {
    now += 3 * DAY;
    cached = await c.check(key);
    now += 5 * DAY; // past the 7-day grace
    expired = await c.hasFeature(key, 'pro_export');
  } finally {
    await setFault(null);
  }

  assert.equal(cached.source, 'cache');
  assert.ok(cached.graceRemaining > 3 * 86400);
  for (const feature of ['pro_export', 'api_calls', 'team_sync', 'time_travel']) {
    const { source: on, ...onRest } = online.hasFeature(feature);
    const { source: off, ...offRest } = cached.hasFeature(feature);
    assert.deepEqual(offRest, onRest, feature);
    assert.deepEqual([on, off], ['online', 'cache'], feature);
  }
  assert.equal(cached.hasFeature('api_calls').remainingUsage, 3);
  assert.deepEqual(
    [expired.granted, expired.why, expired.licenseReason],
    [false, 'license_not_valid', 'grace_expired'],
  );
});

test('metered features: granted with the uses left, then not when none are left', async () => {
  const c = client();
  const left = await c.check(await newKey({ benefit_id: PRO, limit_usage: 10, usage: 7 }));
  assert.deepEqual(left.hasFeature('api_calls'), answer('api_calls', { granted: true, why: 'granted', remainingUsage: 3 }));
  const spent = await c.check(await newKey({ benefit_id: PRO, limit_usage: 10, usage: 10 }));
  assert.deepEqual(spent.hasFeature('api_calls'), answer('api_calls', { why: 'usage_exhausted', remainingUsage: 0 }));
  // Not metered: granted with no count.
  assert.deepEqual(spent.hasFeature('pro_export'), answer('pro_export', { granted: true, why: 'granted' }));
  // No limit: granted with no count.
  const unlimited = await c.check(await newKey({ benefit_id: PRO }));
  assert.equal(unlimited.hasFeature('api_calls').remainingUsage, null);
  assert.equal(unlimited.hasFeature('api_calls').granted, true);

  // Using up the last uses: the next verdict says so.
  const key = await newKey({ benefit_id: PRO, limit_usage: 10, usage: 8 });
  const used = await c.validate(key, { incrementUsage: 2 });
  assert.deepEqual(used.hasFeature('api_calls'), answer('api_calls', { why: 'usage_exhausted', remainingUsage: 0 }));
});

test('an invalid map rejects the first call, naming the entry', async () => {
  const key = await newKey({ benefit_id: PRO });
  const cases = [
    [{ pro: ['not-a-uuid'] }, 'entitlements.pro', 'entitlements.pro: benefit id `not-a-uuid` is not a UUID v4'],
    [{ ok: [PRO], bad: [PRO, 'x'] }, 'entitlements.bad', 'entitlements.bad: benefit id `x` is not a UUID v4'],
    [{ pro: [] }, 'entitlements.pro', 'entitlements.pro: needs at least one benefit id'],
    [{ pro: [PRO, 1] }, 'entitlements.pro', 'entitlements.pro: benefit ids must be strings'],
    [{ '': [PRO] }, 'entitlements.', 'entitlements.: feature names must have 1-64 characters'],
    [{ pro: { benefits: [PRO], metred: true } }, 'entitlements.pro', 'entitlements.pro: unknown key `metred` (expected benefits, metered)'],
    [{ pro: PRO }, 'entitlements.pro', 'entitlements.pro: expected a list of benefit ids or { benefits: [...], metered: true }'],
    [[PRO], 'entitlements', 'entitlements: features must be an object: { feature: [benefit ids] }'],
  ];
  for (const [map, field, detail] of cases) {
    const c = client({ features: map }); // the constructor does not throw: the map is checked in Rust
    for (const call of [() => c.check(key), () => c.hasFeature(key, 'pro'), () => c.status(key)]) {
      const e = await rejection(call());
      assert.ok(e instanceof LicenseError);
      assert.deepEqual([e.code, e.kind, e.field, e.detail], ['invalid_input', 'error', field, detail], JSON.stringify(map));
    }
  }
});
