// Issue #25 through the installed npm package: signed mode (the `relayKeys` option), mirroring
// tests/signed_mode.rs. A stand-in relay on loopback in front of the emulator adds a lease to
// every grant, signed here with node:crypto's Ed25519 as PASETO v4.public (the token the Rust
// relay signs for the same claims, byte for byte: tests/vectors/lease-relay.json), honestly or
// wrong on purpose. Every wrong lease must be "no lease": never a grant, never a crash. The
// attack of the threat model (read the install secret and the app secret, re-seal a forged
// record with the crate's own code: polar-license-forge) grants an unsigned app and is refused
// by a signed one.
//
// The rows every face plays (tests/signed/rows.tsv, which the Rust suites tests/signed_mode.rs
// and tests/wasm_signed.rs play too) run here first, one test each named by its row; the
// scenarios after them hold what the table does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EMULATOR, ORG, mapStorage, newKey, patchKey, pkg, rejection } from './emulator.mjs';
import { DAY, claims, fromPaserk, honest as honestWith, signLease, signingKey, standIn } from './lease-relay.mjs';

const { LicenseClient } = await pkg();
const run = promisify(execFile);

const MACHINE = 'machine-A';
const APP_SECRET = "the app's own secret";
const FIXTURE = JSON.parse(readFileSync(new URL('../vectors/lease-relay.json', import.meta.url), 'utf8'));

test('the stand-in relay signs exactly what the Rust relay signs (tests/vectors/lease-relay.json)', () => {
  const key = fromPaserk(FIXTURE.signing_key);
  assert.equal(key.pair, FIXTURE.public_pair);
  assert.equal(signLease(key, FIXTURE.claims, FIXTURE.machine), FIXTURE.token);
});

const SIGNER = signingKey('relay-2026');

/** An honest relay's lease for `days` (signed by the relay's key unless `key`). */
const honest = (days = 3, key = SIGNER) => honestWith(key, days);

/**
 * One scenario's world: a fresh key on the emulator, the stand-in relay, a fake clock (unix
 * seconds, from now), one storage every app of the world shares.
 */
/**
 * `body(w)` in a fresh world, closed after; with `cachePrefix`, the world's file cache is a new
 * temporary directory of that prefix (`w.cacheDir`), removed after.
 */
async function inWorld(body, cachePrefix) {
  const cacheDir = cachePrefix ? await mkdtemp(join(tmpdir(), cachePrefix)) : undefined;
  const w = await world({ cacheDir });
  try {
    await body(w);
  } finally {
    await w.close();
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  }
}

async function world(options = {}) {
  const w = {
    key: await newKey(),
    t: Math.floor(Date.now() / 1000),
    requests: 0,
    down: false,
    lease: honest(),
    storage: options.storage ?? mapStorage(),
    cacheDir: options.cacheDir,
  };
  w.now = () => w.t;
  w.advance = (s) => void (w.t += s);
  await standIn(w, EMULATOR);
  /** The app, through the relay, in signed mode with `relayKeys` (none: unsigned). */
  w.app = (relayKeys, more = {}) =>
    new LicenseClient({
      organizationId: ORG,
      baseUrl: w.url,
      machineId: MACHINE,
      appSecret: APP_SECRET,
      clock: () => w.t * 1000,
      ...(w.cacheDir ? { storage: 'file', cacheDir: w.cacheDir } : { storage: w.storage }),
      ...(relayKeys === undefined ? {} : { relayKeys }),
      ...more,
    });
  return w;
}

async function revoke(k) {
  await patchKey(k, { status: 'revoked' });
}

// ---- the table's rows (tests/signed/rows.tsv: its header says what the columns mean) ------------

const ROWS = readFileSync(new URL('../signed/rows.tsv', import.meta.url), 'utf8')
  .split('\n')
  .filter((line) => line.trim() !== '' && !line.startsWith('#'))
  .map((line) => {
    const cols = line.split('\t');
    if (cols.length !== 6) throw new Error(`tests/signed/rows.tsv: six columns, tab-separated: ${JSON.stringify(line)}`);
    const [name, lease, activate, then, keys, expect] = cols;
    return { name, lease, activate, then: then === '-' ? [] : then.split(' '), keys, expect };
  });

/** Whether `promise` (an activation or a check) answers as `expect` says; `what` names it. */
async function answers(promise, expect, what) {
  let value;
  let error;
  try {
    value = await promise;
  } catch (e) {
    error = e;
  }
  const said = error
    ? `it rejected: ${error.code}: ${error.message}`
    : `it resolved: source ${value?.source}, graceRemaining ${value?.graceRemaining}`;
  let ok;
  if (expect === 'granted') ok = !error;
  else if (expect === 'cache') ok = !error && value.source === 'cache';
  else if (expect.startsWith('cache:')) ok = !error && value.source === 'cache' && value.graceRemaining === Number(expect.slice(6));
  else ok = error?.code === expect;
  assert.ok(ok, `${what}: expected ${expect}, ${said}`);
}

assert.ok(ROWS.length >= 9, 'the table has its rows');
for (const row of ROWS) {
  test(`signed-mode row: ${row.name}`, async () => {
    const forge = process.env.POLAR_FORGE;
    assert.ok(forge, 'POLAR_FORGE is not set: run scripts/test-wasm.sh');
    await inWorld(async (w) => {
      const signs = {
        honest: honest(),
        'other-key': honest(3, signingKey('relay-2026')),
        'other-machine': (f, now) => signLease(SIGNER, claims(f, now, 3), 'another machine'),
      };
      assert.ok(signs[row.lease], `a lease: ${row.lease}`);
      w.lease = signs[row.lease];
      const signed = w.app([SIGNER.pair]);
      await answers(signed.activate(w.key, { label: 'laptop' }), row.activate, 'the activation');
      for (const step of row.then) {
        if (step === 'offline') w.down = true;
        else if (step === 'forge') await run(forge, [w.cacheDir, w.url, ORG, w.key, MACHINE, APP_SECRET, String(w.t)]);
        else {
          const m = /^\+(\d+)(d?)$/.exec(step);
          assert.ok(m, `a step: ${step}`);
          w.advance(Number(m[1]) * (m[2] ? DAY : 1));
        }
      }
      assert.ok(row.keys === 'relay' || row.keys === 'none', `keys: ${row.keys}`);
      const app = row.keys === 'relay' ? signed : w.app();
      await answers(app.check(w.key), row.expect, 'the check');
    }, 'polar-signed-row-');
  });
}

// ---- the scenarios ---------------------------------------------------------------------------

test('relayKeys: an array or a comma-separated string, checked before any request', async () => {
  await inWorld(async (w) => {
    const other = signingKey('relay-2025');
    for (const relayKeys of [[SIGNER.pair], SIGNER.pair, [other.pair, SIGNER.pair], `${other.pair}, ${SIGNER.pair}`]) {
      const status = await w.app(relayKeys).status(w.key);
      assert.equal(status.lease, null, 'nothing stored yet');
    }
    const bad = [
      [42, /^relayKeys: must be an array/],
      [[SIGNER.pair, 7], /^relayKeys: must be an array/],
      ['relay-2026', /relayKeys: each relay key is KID=k4\.public/],
      ['relay-2026=k4.public.short', /relayKeys: a relay public key is PASERK text/],
      [[SIGNER.pair, SIGNER.pair], /relayKeys: a kid is given twice/],
      ['bad kid=k4.public.ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ', /relayKeys: a kid is/],
    ];
    for (const [relayKeys, message] of bad) {
      const e = await rejection(w.app(relayKeys).check(w.key));
      assert.equal(e.code, 'invalid_input', String(relayKeys));
      // The stable (native) field name, the detail in the JS name, as for every option.
      assert.equal(e.field, 'relay_keys', String(relayKeys));
      assert.match(e.detail, message);
    }
    assert.equal(w.requests, 0, 'no request was sent');
  });
});

test('a lease licenses offline until it ends, even inside the grace', async () => {
  await inWorld(async (w) => {
    const app = w.app([SIGNER.pair]);
    const start = w.t;
    const activated = await app.activate(w.key, { label: 'laptop' });
    assert.deepEqual(activated.lease, { kid: 'relay-2026', expiresAt: start + 3 * DAY });
    assert.deepEqual((await app.status(w.key)).lease, { kid: 'relay-2026', expiresAt: start + 3 * DAY });

    // Offline two days later: licensed from the cache, the grace capped by the lease.
    w.down = true;
    w.advance(2 * DAY);
    const cached = await app.check(w.key);
    assert.equal(cached.source, 'cache');
    assert.equal(cached.reason, 'offline');
    assert.equal(cached.graceRemaining, DAY);
    // The grace ends with the lease (day 3), not 7 days after the verdict (the core's rule).
    assert.equal(cached.graceEndsAt, start + 3 * DAY);
    assert.deepEqual(cached.lease, { kid: 'relay-2026', expiresAt: start + 3 * DAY });
    // checkInBackground: the same lease at once, and in the fresh answer (Polar unreachable).
    let deliver;
    const fresh = new Promise((ok) => (deliver = ok));
    const early = await app.checkInBackground(w.key, (e, r) => deliver([e, r]));
    assert.equal(early.pending, true);
    assert.equal(early.source, 'cache');
    assert.deepEqual(early.lease, { kid: 'relay-2026', expiresAt: start + 3 * DAY });
    const [error, late] = await fresh;
    assert.equal(error, null);
    assert.equal(late.reason, 'offline');
    assert.deepEqual(late.lease, { kid: 'relay-2026', expiresAt: start + 3 * DAY });

    // Past the lease (day 3), well inside the 7-day grace: not licensed.
    w.advance(DAY + 1);
    assert.equal((await rejection(app.check(w.key))).code, 'grace_expired');

    // The same record read by an app without relay keys still has its 7-day grace.
    const unsigned = w.app();
    const plain = await unsigned.check(w.key);
    assert.equal(plain.source, 'cache');
    assert.equal(plain.graceEndsAt, start + 7 * DAY);
    assert.equal(plain.lease, null, 'an unsigned app reports no lease');

    // Back online, a fresh lease: licensed online, then from the cache again.
    w.down = false;
    const online = await app.check(w.key);
    assert.equal(online.source, 'online');
    assert.deepEqual(online.lease, { kid: 'relay-2026', expiresAt: w.t + 3 * DAY });
    w.down = true;
    w.advance(DAY);
    assert.equal((await app.check(w.key)).source, 'cache');

    // validate() holds the lease too.
    w.down = false;
    const validated = await app.validate(w.key, { activationId: activated.activation.id });
    assert.deepEqual(validated.lease, { kid: 'relay-2026', expiresAt: w.t + 3 * DAY });
  });
});

test('an unsigned record never licenses offline in signed mode', async () => {
  await inWorld(async (w) => {
    w.lease = () => undefined;
    const unsigned = w.app();
    await unsigned.activate(w.key, { label: 'laptop' });
    w.down = true;
    w.advance(DAY);
    assert.equal((await unsigned.check(w.key)).source, 'cache');
    const signed = w.app([SIGNER.pair]);
    assert.equal((await rejection(signed.check(w.key))).code, 'offline');
    const status = await signed.status(w.key);
    assert.equal(status.state, 'present');
    assert.equal(status.lease, null);
    assert.equal(status.graceRemaining, null);
  });
});

test('a grant without a lease that verifies is no verdict and no lease', async () => {
  await inWorld(async (w) => {
    const app = w.app([SIGNER.pair], { gracePolicy: { revalidateAfter: 0 } });
    const start = w.t;
    await app.activate(w.key, { label: 'laptop' }); // an honest 3-day lease
    const goodUntil = start + 3 * DAY;
    const stranger = signingKey('stranger');
    const impostor = signingKey('relay-2026');
    const sign = (edit, machine) => (f, now) => {
      const c = claims(f, now, 7);
      edit?.(c);
      return signLease(SIGNER, c, machine === undefined ? f.machine : machine);
    };
    const hostile = [
      ['missing', () => undefined],
      ['empty', () => ''],
      ['garbage', () => 'v4.public.not-a-token'],
      ['v4.local', () => 'v4.local.AAAA'],
      ['oversized', () => `v4.public.${'A'.repeat(5000)}`],
      ['unknown kid', honest(7, stranger)],
      ['impostor key, trusted kid', honest(7, impostor)],
      ['other machine', sign(undefined, 'another machine')],
      ['no machine', sign(undefined, null)],
      ['other license key', sign((c) => (c.key = 'MYAPP-ANOTHER-KEY'))],
      ['other organization', sign((c) => (c.organization_id = randomUUID()))],
      ['other activation', sign((c) => (c.activation_id = randomUUID()))],
      ['not granted', sign((c) => (c.status = 'revoked'))],
      ['expired', sign((c) => ((c.issued_at = c.not_before = w.t - 8 * DAY), (c.expires_at = w.t - 3600)))],
      ['dated a day ahead', sign((c) => ((c.issued_at = c.not_before = w.t + DAY), (c.expires_at = w.t + 8 * DAY)))],
      ['sent twice', (f, now) => [honest(7)(f, now), honest(7)(f, now)]],
      ['edited', (f, now) => honest(7)(f, now).replace(/.(\.[^.]*)$/, (m, footer) => (m[0] === 'A' ? 'B' : 'A') + footer)],
    ];
    for (const [name, lease] of hostile) {
      w.advance(2 * 3600);
      w.lease = lease;
      const before = w.requests;
      // Polar said yes, the relay's lease does not verify: the grant is no verdict, and the
      // cache's own honest lease answers instead (nothing stored from it).
      const r = await app.check(w.key);
      assert.equal(w.requests - before, 1, `${name}: one request`);
      assert.equal(r.source, 'cache', name);
      assert.equal(r.reason, 'protocol_error', name);
      assert.equal(r.graceRemaining, goodUntil - w.t, name);
      assert.deepEqual(r.lease, { kid: 'relay-2026', expiresAt: goodUntil }, name);
      assert.deepEqual((await app.status(w.key)).lease, { kid: 'relay-2026', expiresAt: goodUntil }, name);
    }
    // An honest relay again: a fresh lease and an online grant.
    w.lease = honest();
    w.advance(2 * 3600);
    const r = await app.check(w.key);
    assert.equal(r.source, 'online');
    assert.deepEqual(r.lease, { kid: 'relay-2026', expiresAt: w.t + 3 * DAY });
  });
});

test('a grant without a lease is protocol_error when the cache cannot answer', async () => {
  await inWorld(async (w) => {
    w.lease = () => undefined;
    const app = w.app([SIGNER.pair]);
    const e = await rejection(app.activate(w.key, { label: 'laptop' }));
    assert.equal(e.code, 'protocol_error');
    assert.match(e.detail, /signed mode: the grant came without a lease that verifies \(missing\)/);
    assert.ok(!e.detail.includes(w.key), e.detail);
    // Polar took a slot: the error names the activation, the only place its id survives.
    const id = /Polar activated this key as ([0-9a-f-]{36}), which takes one of its activation slots/.exec(e.detail)?.[1];
    assert.ok(id, e.detail);
    await app.deactivate(w.key, { activationId: id });
    const v = await rejection(app.validate(w.key));
    assert.equal(v.code, 'protocol_error');
    assert.equal((await app.status(w.key)).state, 'empty', 'nothing was stored');
  });
});

test('two relay keys at once, for rotation', async () => {
  await inWorld(async (w) => {
    const old = signingKey('relay-2025');
    const app = w.app([old.pair, SIGNER.pair]);
    await app.activate(w.key, { label: 'laptop' });
    w.down = true;
    w.advance(DAY);
    assert.equal((await app.check(w.key)).source, 'cache');
    // Only the old key: the new key's lease is an unknown kid, so no cache.
    const oldOnly = w.app(old.pair);
    assert.equal((await rejection(oldOnly.check(w.key))).code, 'offline');
    assert.equal((await oldOnly.status(w.key)).lease, null);
  });
});

test('a lease forged into the record with another key does not verify', async () => {
  const forge = process.env.POLAR_FORGE;
  assert.ok(forge, 'POLAR_FORGE is not set: run scripts/test-wasm.sh');
  await inWorld(async (w) => {
    const signed = w.app([SIGNER.pair]);
    const { activation } = await signed.activate(w.key, { label: 'laptop' });
    assert.equal((await signed.check(w.key)).source, 'cache');

    // The key is revoked; the attacker keeps Polar unreachable and, a month on, re-seals the
    // record as freshly verified with the secrets on the machine and the crate's own code.
    await revoke(w.key);
    w.down = true;
    w.advance(30 * DAY);
    const reseal = (...lease) => run(forge, [w.cacheDir, w.url, ORG, w.key, MACHINE, APP_SECRET, String(w.t), ...lease]);
    await reseal();

    // The table's rows: this licenses an app without relay keys, and not the signed one.
    const unsigned = w.app();

    // A lease forged with the attacker's own key under the relay's kid does not verify.
    const fake = signingKey('relay-2026');
    const status = await signed.status(w.key);
    const forged = signLease(
      fake,
      {
        organization_id: ORG,
        key: w.key,
        activation_id: activation.id,
        status: 'granted',
        license_expires_at: null,
        benefit_id: status.license?.benefitId ?? '',
        usage: 0,
        issued_at: w.t,
        not_before: w.t,
        expires_at: w.t + 365 * DAY,
        id: randomUUID(),
      },
      status.activation.conditions.machine_fingerprint,
    );
    await reseal(forged);
    assert.equal((await rejection(signed.check(w.key))).code, 'offline');
    assert.equal((await signed.status(w.key)).lease, null);
    // …while the same forged record still fools the unsigned app.
    assert.equal((await unsigned.check(w.key)).source, 'cache');
  }, 'polar-signed-');
});

test('a replayed relay grant undoes neither a clock set back nor a denial (issue #53)', async () => {
  await inWorld(async (w) => {
    const app = w.app([SIGNER.pair]);
    await app.activate(w.key, { label: 'laptop' });
    w.advance(2 * 3600);
    const online = await app.check(w.key);
    assert.equal(online.source, 'online');
    assert.ok(w.tape, 'a 200 recorded');
    const code = (expected) => (e) => {
      assert.equal(e.code, expected, `${e.code}: ${e.detail}`);
      return true;
    };
    // The clock 30 days ahead and back 28, the relay unreachable: clock_rollback; the replay
    // of the recorded 200 is refused, and the rollback stays.
    w.down = true;
    w.advance(30 * DAY);
    await assert.rejects(app.check(w.key));
    w.advance(-28 * DAY);
    await assert.rejects(app.check(w.key), code('clock_rollback'));
    w.down = false;
    w.replay = true;
    const before = w.requests;
    await assert.rejects(app.check(w.key), code('replayed'));
    assert.equal(w.requests, before, 'the proxy answered alone');
    w.replay = false;
    w.down = true;
    await assert.rejects(app.check(w.key), code('clock_rollback'));
    // Revoked and denied online: the replay is refused, and the denial kept.
    w.down = false;
    await revoke(w.key);
    await assert.rejects(app.check(w.key), code('inactive'));
    w.replay = true;
    await assert.rejects(app.check(w.key), code('replayed'));
    w.replay = false;
    w.down = true;
    w.advance(3600);
    await assert.rejects(app.check(w.key));
  });
});

test('a denial recorded while a grant was held survives the grant (issue #53, the late-grant race)', async () => {
  await inWorld(async (w) => {
    const held = w.app([SIGNER.pair]);
    const other = w.app([SIGNER.pair]); // another process on the same storage
    await other.activate(w.key, { label: 'laptop' });
    w.advance(2 * 3600); // past the fresh window: the held check asks
    let release;
    w.hold = new Promise((ok) => (release = ok));
    const reached = new Promise((ok) => (w.held = ok));
    const late = rejection(held.check(w.key));
    await reached; // Polar answered the held check with a grant
    w.hold = undefined;
    w.advance(4);
    await revoke(w.key);
    const denied = await rejection(other.validate(w.key));
    assert.equal(denied.code, 'inactive');
    release();
    const e = await late;
    assert.equal(e?.code, 'inactive', `the late grant must end denied: ${e?.code ?? 'licensed'}`);
    // The cache keeps denying, an hour later offline too.
    w.down = true;
    w.advance(3600);
    const offline = await rejection(other.check(w.key));
    assert.notEqual(offline, undefined, 'not licensed');
  });
});
