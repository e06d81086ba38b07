// Trials (issue #54 item 4) through the installed npm package: a key from a trial product (a
// benefit the app names with `trialBenefit`) is licensed and reported as a trial with its end
// (`trial: { local: false, state, startedAt: null, endsAt, daysLeft }`), a key of another
// benefit with `trial: null`, a revoked trial key is denied as without the option, and a client
// that names no trial benefit answers exactly as before (no `trial`). Against the suite's
// emulator (POLAR_EMULATOR_URL) over loopback. (tests/trials.rs: the Rust face.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { askingClient, newKey, patchKey, pkg, rejection } from './emulator.mjs';

const { LicenseClient } = await pkg();

const DAY = 86400;
const TRIAL_BENEFIT = '7a1e3c5d-2b4f-4e6a-9c8d-0f1e2d3c4b5a';
const PAID_BENEFIT = '3c5d7a1e-4f2b-4a6e-8d9c-1e0f3c2d5b4a';
const iso = (s) => new Date(s * 1000).toISOString().replace('.000Z', 'Z');

/** A client of the emulator asking Polar at every check, naming `trialBenefit` (if any). */
function client(trialBenefit) {
  return askingClient(LicenseClient, trialBenefit === undefined ? {} : { trialBenefit });
}

test('a key of a named trial benefit is a trial with its end; another benefit is none', async () => {
  const now = Math.floor(Date.now() / 1000);
  const ends = now + 10 * DAY - 3600;
  const trialKey = await newKey({ benefit_id: TRIAL_BENEFIT, expires_at: iso(ends) });
  const paidKey = await newKey({ benefit_id: PAID_BENEFIT });

  const named = client([PAID_BENEFIT.replace('3c5d', '0000'), TRIAL_BENEFIT]);
  const trial = await named.check(trialKey);
  assert.equal(trial.license.benefitId, TRIAL_BENEFIT);
  assert.deepEqual(trial.trial, { local: false, state: 'active', startedAt: null, endsAt: ends, daysLeft: 10 });
  // One id, not a list, names it too.
  assert.equal((await client(TRIAL_BENEFIT).check(trialKey)).trial.endsAt, ends);

  const paid = await named.check(paidKey);
  assert.equal(paid.trial, null);

  // No trial benefit named: the answer as before, without `trial`.
  assert.equal('trial' in (await client().check(trialKey)), false);
});

test('a revoked trial key is denied as without the option, not a trial', async () => {
  const key = await newKey({ benefit_id: TRIAL_BENEFIT, expires_at: iso(Math.floor(Date.now() / 1000) + 5 * DAY) });
  const c = client(TRIAL_BENEFIT);
  assert.equal((await c.check(key)).trial.state, 'active');
  await patchKey(key, { status: 'revoked' });
  const e = await rejection(c.check(key));
  assert.equal(e.code, 'inactive');
  assert.equal(e.trial, undefined);
});

test('a trial benefit that is no id or list of ids is invalid_input, field trial_benefit', async () => {
  for (const bad of [5, [TRIAL_BENEFIT, 5], { id: TRIAL_BENEFIT }, null]) {
    const e = await rejection(client(bad).check('ANY-KEY'));
    assert.deepEqual([e.code, e.field], ['invalid_input', 'trial_benefit'], JSON.stringify(bad));
  }
});
