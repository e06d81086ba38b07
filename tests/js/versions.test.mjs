// Issue #16 through the installed npm package: Polar's API version 2027-01 adds `member`,
// `subscription` and `order` to every license answer (read here in camelCase, through
// validate, activate, check and the storage), and a key rotated after it was valid on this
// install is told apart from a typo (`previouslyValid`, `hint` on the LicenseError).
//
// Against an emulator of this file alone, started from the native command line (POLAR_CLI)
// with `--api-version 2027-01`, over loopback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CLI, ORG, mapStorage, newKey, pkg, rejection, setFault, served } from './emulator.mjs';

const { LicenseClient } = await pkg();

if (!CLI) throw new Error('POLAR_CLI is not set: run scripts/test-wasm.sh');

let polar;
let url;

before(async () => {
  polar = await served(['emulator', '--port', '0', '--api-version', '2027-01'], { ready: null });
  url = polar.url;
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
});

after(() => polar?.close());

const EXTRAS = {
  member: { email: 'seat@acme.io', external_id: 'seat-7' },
  subscription: { status: 'active', current_period_end: '2027-02-01T00:00:00Z', cancel_at_period_end: true },
  order: { status: 'paid' },
};

function client(storage = mapStorage()) {
  return new LicenseClient({ organizationId: ORG, baseUrl: url, storage });
}

function assertGrant(license, what) {
  assert.match(license.memberId, /^[0-9a-f-]{36}$/, what);
  assert.deepEqual(license.member, { id: license.memberId, email: 'seat@acme.io', externalId: 'seat-7' }, what);
  assert.equal(license.subscription.status, 'active', what);
  assert.equal(license.subscription.currentPeriodEnd, '2027-02-01T00:00:00Z', what);
  assert.equal(license.subscription.cancelAtPeriodEnd, true, what);
  assert.equal(license.subscription.endsAt, null, what);
  assert.equal(license.subscriptionId, license.subscription.id, what);
  assert.deepEqual([license.order.status, license.order.paid], ['paid', true], what);
  assert.equal(license.orderId, license.order.id, what);
}

test('2027-01: member, subscription and order on activate, validate and check, through the storage', async () => {
  const key = await newKey(EXTRAS, url);
  const storage = mapStorage();
  const c = client(storage);
  const activated = await c.activate(key, { label: 'laptop' });
  assertGrant(activated.license, 'activate');
  const validated = await c.validate(key, { activationId: activated.activation.id });
  assertGrant(validated.license, 'validate');
  const checked = await c.check(key);
  assertGrant(checked.license, 'check');
  // Another client on the same storage asking every time, Polar unreachable: the cache
  // answers with them.
  await setFault({ kind: 'close_immediately' }, url);
  try {
    const offline = new LicenseClient({ organizationId: ORG, baseUrl: url, storage, gracePolicy: { revalidateAfter: 0 } });
    const cached = await offline.check(key);
    assert.equal(cached.source, 'cache');
    assert.equal(cached.reason, 'offline');
    assert.equal(cached.graceEndsAt, cached.verifiedAt + 7 * 24 * 3600);
    assertGrant(cached.license, 'cache');
  } finally {
    await setFault(null, url);
  }
});

test('a key without them has none of the fields', async () => {
  const key = await newKey({}, url);
  const { license } = await client().check(key);
  for (const field of ['member', 'memberId', 'subscription', 'subscriptionId', 'order', 'orderId']) {
    assert.equal(license[field], undefined, field);
  }
});

test('a rotated key that was valid here says so; a typo does not', async () => {
  const key = await newKey({}, url);
  const c = client();
  await c.check(key);
  const resp = await fetch(`${url}/__emulator/keys/${key}/rotate`, { method: 'POST' });
  assert.equal(resp.status, 200);
  const { key: successor } = await resp.json();

  const denied = await rejection(c.validate(key));
  assert.equal(denied.code, 'not_found');
  assert.equal(denied.detail, 'Not found');
  assert.equal(denied.previouslyValid, true);
  // One sentence (the hint) and the core's one next step beside it (issue #80).
  assert.match(denied.hint, /replaced/);
  assert.match(denied.nextStep, /customer portal/);
  assert.match(denied.userMessage, /replaced.*customer portal/s);
  assert.match(denied.userMessage, /^This key was valid here before/);
  const again = await rejection(c.check(key));
  assert.equal(again.previouslyValid, true);

  const typo = await rejection(c.check(`${key}-TYPO`));
  assert.equal(typo.code, 'not_found');
  assert.equal(typo.previouslyValid, undefined);
  assert.equal(typo.hint, undefined);

  assert.equal((await c.check(successor)).license.key, successor);
});
