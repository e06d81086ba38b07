// The stand-in relay of the signed-mode suites (tests/js/signed.test.mjs, tests/browser/
// signed.test.mjs): PASETO v4.public leases signed with node:crypto's Ed25519 exactly as the Rust
// relay signs them (held to tests/vectors/lease-relay.json by tests/js/signed.test.mjs), and a
// relay on loopback in front of an emulator that adds them to grants, honestly or not.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { createServer } from 'node:http';

export const DAY = 86_400;

// ---- PASETO v4.public, as the relay signs it (src/lease.rs) -------------------------------

/** PASETO's pre-authentication encoding: le64(n), then each piece as le64(length) ‖ bytes. */
export function pae(pieces) {
  const le64 = (n) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n) & 0x7fffffffffffffffn);
    return b;
  };
  return Buffer.concat([le64(pieces.length), ...pieces.flatMap((p) => [le64(p.length), p])]);
}

/** RFC 3339 as the `time` crate writes whole seconds: `2026-01-01T00:00:00Z`. */
export const rfc3339 = (unix) => new Date(unix * 1000).toISOString().replace('.000Z', 'Z');

/** A relay signing key: `kid`, the node private key and `pair` (`KID=k4.public.…`). */
export function signingKey(kid, seed) {
  const privateKey = seed
    ? createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' })
    : generateKeyPairSync('ed25519').privateKey;
  const { x } = createPublicKey(privateKey).export({ format: 'jwk' });
  return { kid, privateKey, pair: `${kid}=k4.public.${x}` };
}

/** The key of a k4.secret PASERK (seed ‖ public key). */
export function fromPaserk(text) {
  const [kid, secret] = text.split('=');
  const bytes = Buffer.from(secret.slice('k4.secret.'.length), 'base64url');
  return signingKey(kid, bytes.subarray(0, 32));
}

/** Claims in the relay's wire form (src/lease.rs `Wire`, its field order). */
export function wire(c) {
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
    // The request's nonce (issue #53), written only when there is one, as the relay does.
    ...(c.nonce == null ? {} : { nonce: c.nonce }),
  };
}

/** A v4.public token of `claims`, its implicit assertion the machine (or empty). */
export function signLease(key, claims, machine) {
  const h = Buffer.from('v4.public.');
  const m = Buffer.from(JSON.stringify(wire(claims)));
  const f = Buffer.from(JSON.stringify({ kid: key.kid }));
  const i = Buffer.from(machine ?? '');
  const sig = sign(null, pae([h, m, f, i]), key.privateKey);
  return `v4.public.${Buffer.concat([m, sig]).toString('base64url')}.${f.toString('base64url')}`;
}

// ---- the stand-in relay ----------------------------------------------------------------------

/**
 * The facts of a granted validate or activate: from the request, the emulator's answer and the
 * request's `polar-license-nonce` (signed into the lease as the relay does).
 */
export function facts(path, request, answer, nonce) {
  const activate = path.endsWith('/activate');
  const license = activate ? answer.license_key : answer;
  return {
    organization_id: request.organization_id,
    key: request.key,
    machine: request.conditions?.machine_fingerprint,
    activation_id: activate ? answer.id : (answer.activation?.id ?? null),
    license,
    nonce,
  };
}

export function claims(f, now, days) {
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
    nonce: f.nonce,
  };
}

/**
 * A relay on loopback in front of the emulator at `target`: forwards every request, and adds to
 * each grant the lease(s) `world.lease(facts, now)` returns (`undefined`: none; an array: that
 * many headers), `world.now()` in unix seconds. `world.down` closes every connection (Polar
 * unreachable); `world.requests` counts what it received. For pages on another origin it
 * answers CORS preflights and allows any origin, and lists the lease header in
 * `Access-Control-Expose-Headers` unless `world.hideLease` (as a relay misconfigured for
 * browsers would). `world.age` (seconds): every answer says it is that old (`Age`, as a relay
 * replaying a stored answer does), exposed to pages unless `world.hideAge`. Sets `world.url`
 * and `world.close()`. `world.tape` is the last leased 200 of a validate; with `world.replay`
 * it answers every request (a recording proxy's replay, issue #53).
 */
export async function standIn(world, target) {
  const cors = { 'access-control-allow-origin': '*' };
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        ...cors,
        'access-control-allow-methods': 'POST',
        'access-control-allow-headers': req.headers['access-control-request-headers'] ?? '',
      });
      return void res.end();
    }
    // The user's recording proxy (issue #53): replaying, the last leased 200 of a validate
    // answers, as it came, and nothing is passed on.
    if (world.replay && world.tape) {
      res.writeHead(world.tape.status, world.tape.headers);
      return void res.end(world.tape.body);
    }
    world.requests += 1;
    if (world.down) return void req.socket.destroy();
    const body = Buffer.concat(chunks);
    // `world.hold` (a promise): this request's answer is held until it settles (taken when
    // the request arrives; `world.held()` is called once Polar has answered it).
    const hold = world.hold;
    const resp = await fetch(`${target}${req.url}`, { method: req.method, headers: { 'content-type': 'application/json' }, body });
    const answer = Buffer.from(await resp.arrayBuffer());
    if (hold) {
      world.held?.();
      await hold;
    }
    const headers = { 'content-type': 'application/json', ...cors };
    const exposed = [];
    if (!world.hideLease) exposed.push('polar-license-lease');
    if (world.age !== undefined) {
      headers.age = String(world.age);
      if (!world.hideAge) exposed.push('age');
    }
    if (exposed.length) headers['access-control-expose-headers'] = exposed.join(', ');
    const date = resp.headers.get('date');
    if (date) headers.date = date;
    if (resp.status === 200 && !req.url.endsWith('/deactivate')) {
      const nonce = req.headers['polar-license-nonce'];
      const lease = world.lease(facts(req.url, JSON.parse(body), JSON.parse(answer), nonce), world.now());
      if (lease !== undefined) headers['polar-license-lease'] = lease;
      if (lease !== undefined && req.url.endsWith('/validate')) {
        world.tape = { status: resp.status, headers: { ...headers }, body: answer };
      }
    }
    res.writeHead(resp.status, headers);
    res.end(answer);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  world.url = `http://127.0.0.1:${server.address().port}`;
  // Node 18's close() waits for idle keep-alive connections to time out (5 s each: node 19+
  // closes them itself), which made each signed-mode test take 5 s under Node 18.
  world.close = () =>
    new Promise((ok) => {
      server.close(ok);
      server.closeAllConnections?.();
    });
}

/** An honest relay's lease for `days`, signed with `key`. */
export const honest =
  (key, days = 3) =>
  (f, now) =>
    signLease(key, claims(f, now, days), f.machine);
