// @polar-license/tauri in node against Tauri's IPC mocks (@tauri-apps/api/mocks), tied to the
// Rust side: crates/tauri/tests/commands.rs writes every invocation it made through Tauri's
// IPC and the plugin's real answer (<target>/tmp/polar-license-tauri/answers-*.json). Here each
// one is made again through this package's functions: the command name and arguments they
// send must be exactly the recorded ones, and what they resolve or reject with must be the
// recorded answer (a LicenseError for the plugin's errors). Then every answer is checked
// against index.d.ts with tsc (test/types.test.mjs).
//
// Run after `cargo test -p tauri-plugin-polar-license` (scripts/test-tauri.sh does both);
// POLAR_TAURI_FIXTURES names another directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from './fixtures.mjs';

globalThis.window = globalThis; // what mockIPC patches: window.__TAURI_INTERNALS__
const { mockIPC, clearMocks } = await import('@tauri-apps/api/mocks');
const { emit } = await import('@tauri-apps/api/event');
const guest = await import('../index.js');

const dir = fixturesDir();
const scenarios = readdirSync(dir)
  .filter((f) => /^answers-.*\.json$/.test(f))
  .map((f) => ({ name: f.slice('answers-'.length, -'.json'.length), entries: JSON.parse(readFileSync(join(dir, f), 'utf8')) }));

/** This package's call for a recorded invocation. */
function callFor({ command, args }) {
  switch (command) {
    case 'check':
      return () => guest.check(args.key);
    case 'check_in_background':
      return () => guest.checkInBackground(args.key);
    case 'activate':
      return () => guest.activate(args.key, { label: args.label });
    case 'deactivate':
      return () => guest.deactivate({ key: args.key, activationId: args.activationId });
    case 'validate':
      return () =>
        guest.validate({ key: args.key, activationId: args.activationId, benefitId: args.benefitId });
    case 'status':
      return () => guest.status(args.key);
    case 'remembered_key':
      return () => guest.rememberedKey();
    case 'forget_key':
      return () => guest.forgetKey();
    case 'has_feature':
      return () => guest.hasFeature(args.feature, args.key);
    case 'entitlement':
      return () => guest.entitlement(args.name, args.key);
    case 'request_sign_in_code':
      return () => guest.requestSignInCode(args.email, { customerId: args.customerId });
    case 'sign_in':
      return () => guest.signIn(args.code);
    case 'sign_out':
      return () => guest.signOut();
    case 'list_devices':
      return () => guest.listDevices(args.key, { relay: args.relay });
    case 'free_device':
      return () => guest.freeDevice(args.activationId, { key: args.key });
    case 'recoverable_keys':
      return () => guest.recoverableKeys();
    case 'recover_key':
      return () => guest.recoverKey(args.id, { label: args.label });
    case 'follow_rotation':
      return () => guest.followRotation({ key: args.key });
    case 'open_checkout_link':
      return () => guest.openCheckoutLink(args.link, { email: args.email });
    case 'open_relay_checkout':
      return () =>
        guest.openRelayCheckout(args.productId, {
          metadata: args.metadata,
          email: args.email,
          successUrl: args.successUrl,
        });
    case 'buy':
      return () => guest.buy(args.checkout, { successUrl: args.successUrl, label: args.label });
    case 'buy_signed_in':
      return () => guest.buySignedIn(args.receipt, { label: args.label });
    case 'seat_acquire':
      return () => guest.seatAcquire({ key: args.key, machine: args.machine, ci: args.ci });
    case 'seat_heartbeat':
      return () => guest.seatHeartbeat(args.seat);
    case 'seat_release':
      return () => guest.seatRelease(args.seat);
    case 'record_usage':
      return () =>
        guest.recordUsage({ meter: args.meter, units: args.units, id: args.id, key: args.key, relay: args.relay });
    default:
      throw new Error(`no function of the package invokes ${command}`);
  }
}

const VOID = new Set(['forget_key', 'request_sign_in_code', 'sign_in', 'sign_out', 'free_device']);

test('the Rust tests recorded every command of the plugin', () => {
  assert.ok(scenarios.length >= 9, `scenarios in ${dir}: ${scenarios.map((s) => s.name)}`);
  const invoked = new Set(scenarios.flatMap((s) => s.entries.filter((e) => e.command).map((e) => e.command)));
  const commands = JSON.parse(readFileSync(join(dir, 'commands.json'), 'utf8'));
  assert.deepEqual([...invoked].sort(), [...commands].sort());
  assert.ok(scenarios.some((s) => s.entries.some((e) => e.event)), 'an event was recorded');
});

for (const { name, entries } of scenarios) {
  test(`scenario ${name}: each call sends the recorded command and arguments and decodes the answer`, async () => {
    let seen = [];
    mockIPC(
      (cmd, args) => {
        seen.push({ cmd, args });
        const entry = entries[current];
        if ('err' in entry) throw entry.err;
        return entry.ok;
      },
      { shouldMockEvents: true },
    );
    const events = [];
    const unlisten = await guest.onChecked((state) => events.push(state));
    let current = 0;
    try {
      for (; current < entries.length; current++) {
        const entry = entries[current];
        if (entry.event) {
          await emit(entry.event, entry.payload);
          assert.deepEqual(events.at(-1), entry.payload, 'onChecked got the event as sent');
          continue;
        }
        seen = [];
        const call = callFor(entry);
        if ('ok' in entry) {
          const answer = await call();
          assert.deepEqual(answer, VOID.has(entry.command) ? undefined : entry.ok);
        } else {
          const error = await call().then(
            (v) => assert.fail(`resolved ${JSON.stringify(v)}`),
            (e) => e,
          );
          if (typeof entry.err === 'object' && 'purchaseError' in entry.err) {
            assert.ok(error instanceof guest.PurchaseError, `${entry.command}: ${error}`);
            assert.equal(error.message, entry.err.userMessage);
            assert.deepEqual(error.toJSON(), entry.err);
          } else if (typeof entry.err === 'object' && 'portalError' in entry.err) {
            assert.ok(error instanceof guest.DeviceError, `${entry.command}: ${error}`);
            assert.equal(error.name, 'DeviceError');
            assert.equal(error.message, entry.err.userMessage);
            assert.deepEqual(error.toJSON(), entry.err);
          } else if (typeof entry.err === 'object' && entry.command.startsWith('seat_')) {
            assert.ok(error instanceof guest.SeatError, `${entry.command}: ${error}`);
            assert.ok(error instanceof guest.LicenseError);
            assert.equal(error.name, 'SeatError');
            assert.equal(error.message, entry.err.userMessage);
            assert.deepEqual(error.toJSON(), entry.err);
          } else if (typeof entry.err === 'object' && entry.command === 'record_usage') {
            assert.ok(error instanceof guest.UsageError, `${entry.command}: ${error}`);
            assert.ok(error instanceof guest.LicenseError);
            assert.equal(error.name, 'UsageError');
            assert.equal(error.message, entry.err.userMessage);
            assert.deepEqual(error.toJSON(), entry.err);
          } else if (typeof entry.err === 'object') {
            assert.ok(error instanceof guest.LicenseError, `${entry.command}: ${error}`);
            assert.equal(error.name, 'LicenseError');
            assert.equal(error.message, entry.err.userMessage);
            assert.deepEqual(error.toJSON(), entry.err);
          } else {
            // Tauri's own refusal (a missing argument): a plain Error with its message.
            assert.ok(error instanceof Error && !(error instanceof guest.LicenseError));
            assert.equal(error.message, entry.err);
          }
        }
        assert.deepEqual(seen, [{ cmd: `plugin:polar-license|${entry.command}`, args: entry.args }]);
      }
    } finally {
      unlisten();
      clearMocks();
    }
    assert.equal(events.length, entries.filter((e) => e.event).length);
  });
}

// Polar's 2027-01 fields (issue #54): crates/tauri/tests/versions.rs recorded an app whose Polar
// answers in 2027-01 and one in 2026-10. The package hands the seat holder, the subscription and
// the order to the app as the plugin sent them, and before 2027-01 there are none.
test('on 2027-01 the license the package resolves with has member, subscription and order.paid', async () => {
  const byName = Object.fromEntries(scenarios.map((s) => [s.name, s.entries]));
  for (const api of ['2027-01', '2026-10']) {
    const entries = byName[`versions-${api}`];
    assert.ok(entries, `answers-versions-${api}.json in ${dir}`);
    for (const entry of entries) {
      mockIPC(() => entry.ok);
      try {
        const { license } = await callFor(entry)();
        if (api === '2027-01') {
          assert.equal(license.member.email, 'seat@acme.io', entry.command);
          assert.equal(license.member.externalId, 'acme-42', entry.command);
          assert.equal(license.subscription.status, 'active', entry.command);
          assert.equal(license.subscription.cancelAtPeriodEnd, true, entry.command);
          assert.equal(typeof license.subscription.currentPeriodEnd, 'number', entry.command);
          assert.equal(license.subscription.endsAt, license.subscription.currentPeriodEnd, entry.command);
          assert.equal(license.order.paid, true, entry.command);
          assert.equal(license.order.status, 'paid', entry.command);
        } else {
          for (const absent of ['member', 'subscription', 'order']) {
            assert.ok(!(absent in license), `${api} ${entry.command}: ${absent}`);
          }
        }
      } finally {
        clearMocks();
      }
    }
  }
});
