// Issue #25 through the installed npm package: signed mode (the `relayKeys` option), mirroring
// tests/signed_mode.rs. A stand-in relay on loopback in front of the emulator adds a lease to
// every grant, signed here with node:crypto's Ed25519 as PASETO v4.public (the token the Rust
// relay signs for the same claims, byte for byte: tests/vectors/lease-relay.json), honestly or
// wrong on purpose. Every wrong lease must be "no lease": never a grant, never a crash. The
// attack of the threat model (read the install secret and the app secret, re-seal a forged
// record with the crate's own code: polar-license-forge) grants an unsigned app and is refused
// by a signed one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EMULATOR, ORG, mapStorage, newKey, pkg, rejection } from './emulator.mjs';

const { LicenseClient } = await pkg();
const run = promisify(execFile);

const DAY = 86_400;
const MACHINE = 'machine-A';
const APP_SECRET = "the app's own secret";
const FIXTURE = JSON.parse(readFileSync(new URL('../vectors/lease-relay.json', import.meta.url), 'utf8'));

// ---- PASETO v4.public, as the relay signs it (src/lease.rs) -------------------------------

/** PASETO's pre-authentication encoding: le64(n), then each piece as le64(length) ‖ bytes. */
function pae(pieces) {
  const le64 = (n) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n) & 0x7fffffffffffffffn);
    return b;
  };
  return Buffer.concat([le64(pieces.length), ...pieces.flatMap((p) => [le64(p.length), p])]);
}

/** RFC 3339 as the `time` crate writes whole seconds: `2026-01-01T00:00:00Z`. */
const rfc3339 = (unix) => new Date(unix * 1000).toISOString().replace('.000Z', 'Z');

/** A relay signing key: `kid`, the node private key and `pair` (`KID=k4.public.…`). */
function signingKey(kid, seed) {
  const privateKey = seed
    ? createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' })
    : generateKeyPairSync('ed25519').privateKey;
  const { x } = createPublicKey(privateKey).export({ format: 'jwk' });
  return { kid, privateKey, pair: `${kid}=k4.public.${x}` };
}

/** The key of a k4.secret PASERK (seed ‖ public key). */
function fromPaserk(text) {
  const [kid, secret] = text.split('=');
  const bytes = Buffer.from(secret.slice('k4.secret.'.length), 'base64url');
  return signingKey(kid, bytes.subarray(0, 32));
}

/** Claims in the relay's wire form (src/lease.rs `Wire`, its field order). */
function wire(c) {
  return {
    iss: 'polar-license-relay',
    sub: createHash('sha256').update(c.key).digest('hex'),
    iat: rfc3339(c.issued_at),
    nbf: rfc3339(c.not_before),
    exp: rfc3339(c.expires_at),
    jti: c.id,
    org: c.organization_id,
    act: c.activation_id ?? null,
    status: c.status,
    license_expires_at: c.license_expires_at == null ? null : rfc3339(c.license_expires_at),
    benefit: c.benefit_id,
    usage: c.usage,
    limit_usage: c.limit_usage ?? null,
    limit_activations: c.limit_activations ?? null,
  };
}

/** A v4.public token of `claims`, its implicit assertion the machine (or empty). */
function signLease(key, claims, machine) {
  const h = Buffer.from('v4.public.');
  const m = Buffer.from(JSON.stringify(wire(claims)));
  const f = Buffer.from(JSON.stringify({ kid: key.kid }));
  const i = Buffer.from(machine ?? '');
  const sig = sign(null, pae([h, m, f, i]), key.privateKey);
  return `v4.public.${Buffer.concat([m, sig]).toString('base64url')}.${f.toString('base64url')}`;
}

test('the stand-in relay signs exactly what the Rust relay signs (tests/vectors/lease-relay.json)', () => {
  const key = fromPaserk(FIXTURE.signing_key);
  assert.equal(key.pair, FIXTURE.public_pair);
  assert.equal(signLease(key, FIXTURE.claims, FIXTURE.machine), FIXTURE.token);
});

// ---- the stand-in relay ----------------------------------------------------------------------

/** The facts of a granted validate or activate: from the request and the emulator's answer. */
function facts(path, request, answer) {
  const activate = path.endsWith('/activate');
  const license = activate ? answer.license_key : answer;
  return {
    organization_id: request.organization_id,
    key: request.key,
    machine: request.conditions?.machine_fingerprint,
    activation_id: activate ? answer.id : (answer.activation?.id ?? null),
    license,
  };
}

function claims(f, now, days) {
  const licenseEnd = f.license.expires_at ? Math.floor(Date.parse(f.license.expires_at) / 1000) : null;
  const exp = now + days * DAY;
  return {
    organization_id: f.organization_id,
    key: f.key,
    activation_id: f.activation_id,
    status: f.license.status,
    license_expires_at: licenseEnd,
    benefit_id: f.license.benefit_id,
    usage: f.license.usage ?? 0,
    limit_usage: f.license.limit_usage ?? null,
    limit_activations: f.license.limit_activations ?? null,
    issued_at: now,
    not_before: now,
    expires_at: licenseEnd === null ? exp : Math.min(exp, licenseEnd),
    id: randomUUID(),
  };
}

/**
 * A relay on loopback in front of the emulator: forwards every request, and adds to each grant
 * the lease(s) `lease(facts, now)` returns (`undefined`: none; an array: that many headers).
 * `down` closes every connection (Polar unreachable). `requests` counts what it received.
 */
async function standIn(world) {
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    world.requests += 1;
    if (world.down) return void req.socket.destroy();
    const body = Buffer.concat(chunks);
    const resp = await fetch(`${EMULATOR}${req.url}`, { method: req.method, headers: { 'content-type': 'application/json' }, body });
    const answer = Buffer.from(await resp.arrayBuffer());
    const headers = { 'content-type': 'application/json' };
    const date = resp.headers.get('date');
    if (date) headers.date = date;
    if (resp.status === 200 && !req.url.endsWith('/deactivate')) {
      const lease = world.lease(facts(req.url, JSON.parse(body), JSON.parse(answer)), world.now());
      if (lease !== undefined) headers['polar-license-lease'] = lease;
    }
    res.writeHead(resp.status, headers);
    res.end(answer);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  world.url = `http://127.0.0.1:${server.address().port}`;
  world.close = () => new Promise((ok) => server.close(ok));
}

const SIGNER = signingKey('relay-2026');

/** An honest relay's lease for `days`. */
const honest =
  (days = 3, key = SIGNER) =>
  (f, now) =>
    signLease(key, claims(f, now, days), f.machine);

/**
 * One scenario's world: a fresh key on the emulator, the stand-in relay, a fake clock (unix
 * seconds, from now), one storage every app of the world shares.
 */
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
  await standIn(w);
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
  const resp = await fetch(`${EMULATOR}/__emulator/keys/${k}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ status: 'revoked' }),
  });
  assert.equal(resp.status, 200, await resp.text());
}

// ---- the scenarios ---------------------------------------------------------------------------

test('relayKeys: an array or a comma-separated string, checked before any request', async () => {
  const w = await world();
  try {
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
  } finally {
    await w.close();
  }
});

test('a lease licenses offline until it ends, even inside the grace', async () => {
  const w = await world();
  try {
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
    assert.deepEqual(cached.lease, { kid: 'relay-2026', expiresAt: start + 3 * DAY });

    // Past the lease (day 3), well inside the 7-day grace: not licensed.
    w.advance(DAY + 1);
    assert.equal((await rejection(app.check(w.key))).code, 'grace_expired');

    // The same record read by an app without relay keys still has its 7-day grace.
    const unsigned = w.app();
    const plain = await unsigned.check(w.key);
    assert.equal(plain.source, 'cache');
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
  } finally {
    await w.close();
  }
});

test('an unsigned record never licenses offline in signed mode', async () => {
  const w = await world();
  try {
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
  } finally {
    await w.close();
  }
});

test('a grant without a lease that verifies is no verdict and no lease', async () => {
  const w = await world();
  try {
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
  } finally {
    await w.close();
  }
});

test('a grant without a lease is protocol_error when the cache cannot answer', async () => {
  const w = await world();
  try {
    w.lease = () => undefined;
    const app = w.app([SIGNER.pair]);
    const e = await rejection(app.activate(w.key, { label: 'laptop' }));
    assert.equal(e.code, 'protocol_error');
    assert.match(e.detail, /signed mode: the grant came without a lease that verifies \(missing\)/);
    assert.ok(!e.detail.includes(w.key), e.detail);
    const v = await rejection(app.validate(w.key));
    assert.equal(v.code, 'protocol_error');
    assert.equal((await app.status(w.key)).state, 'empty', 'nothing was stored');
  } finally {
    await w.close();
  }
});

test('two relay keys at once, for rotation', async () => {
  const w = await world();
  try {
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
  } finally {
    await w.close();
  }
});

test('the forged-record attack grants an unsigned app and is refused in signed mode', async () => {
  const forge = process.env.POLAR_FORGE;
  assert.ok(forge, 'POLAR_FORGE is not set: run scripts/test-wasm.sh');
  const dir = await mkdtemp(join(tmpdir(), 'polar-signed-'));
  const w = await world({ cacheDir: dir });
  try {
    const signed = w.app([SIGNER.pair]);
    const { activation } = await signed.activate(w.key, { label: 'laptop' });
    assert.equal((await signed.check(w.key)).source, 'cache');

    // The key is revoked; the attacker keeps Polar unreachable and, a month on, re-seals the
    // record as freshly verified with the secrets on the machine and the crate's own code.
    await revoke(w.key);
    w.down = true;
    w.advance(30 * DAY);
    const reseal = (...lease) => run(forge, [dir, w.url, ORG, w.key, MACHINE, APP_SECRET, String(w.t), ...lease]);
    await reseal();

    // Without relay keys the app believes it (the ceiling of every client-side scheme).
    const unsigned = w.app();
    const fooled = await unsigned.check(w.key);
    assert.equal(fooled.source, 'cache', 'the forged record licenses an unsigned app');

    // In signed mode the lease ended on day 3: not licensed, whatever the record says.
    assert.equal((await rejection(signed.check(w.key))).code, 'grace_expired');

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
  } finally {
    await w.close();
    await rm(dir, { recursive: true, force: true });
  }
});
