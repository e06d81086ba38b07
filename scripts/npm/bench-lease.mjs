// Node benchmark of issue #25: what verifying a signed lease costs in the npm package's wasm.
//
//   node scripts/npm/bench-lease.mjs URL ORG PACKAGE_DIR [N=2000] [ROUNDS=5]
//
// URL is a running emulator (`polar-license emulator --port 0`), ORG its organization, and
// PACKAGE_DIR the built package (target/npm/pkg, from scripts/build-npm.sh). A stand-in relay in
// this process signs a PASETO v4.public lease (node:crypto Ed25519, as tests/js/signed.test.mjs)
// on the grant of one activation of the demo key made through the package; then the stored
// record, its ledger and the install secret are read back; a validate of the activation a
// second later stores a second lease (another record). The engine's `status` step (open the
// record: MAC, ledger, and in signed mode `session::gate_lease`) is then called N times by an
// engine with the relay key and N times by one without, alternating in ROUNDS rounds, on the
// two records in turn (the core remembers the last lease it verified, so each call reads and
// checks one: `lease_verify_us`, PASETO parse, the claims, the checks; since issue #38 the
// Ed25519 signature is the host's, asked once per lease and remembered by the engine) and on
// one record (every call after the first a remembered lease: `lease_memo_us`). The differences
// per call are the cost of signed mode in the engine; `host_verify_us` is the host's part, one
// node:crypto Ed25519 verification of what the engine asked (once per lease per process), and
// `first_lease_us` a fresh engine's whole first `status` with a lease (the ask, the host's
// verification, the step again). Prints one JSON object.
import { createServer } from 'node:http';
import { createHash, generateKeyPairSync, createPublicKey, randomUUID, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEMO_KEY, benchArgs, importPackage } from './bench-args.mjs';

const { url, org, pkg, counts } = benchArgs('bench-lease.mjs', { N: '2000', ROUNDS: '5' });
const { N: n, ROUNDS: rounds } = counts;

// ---- a relay key and PASETO v4.public (the relay's format, src/lease.rs) -----------------------
const { privateKey } = generateKeyPairSync('ed25519');
const pair = `bench=k4.public.${createPublicKey(privateKey).export({ format: 'jwk' }).x}`;
const le64 = (v) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};
const pae = (pieces) => Buffer.concat([le64(pieces.length), ...pieces.flatMap((p) => [le64(p.length), p])]);
const rfc3339 = (unix) => new Date(unix * 1000).toISOString().replace('.000Z', 'Z');
function lease(req, answer, now, activate, nonce) {
  const license = activate ? answer.license_key : answer;
  const claims = {
    iss: 'polar-license-relay',
    sub: createHash('sha256').update(req.key).digest('hex'),
    iat: rfc3339(now),
    nbf: rfc3339(now),
    exp: rfc3339(now + 7 * 86400),
    jti: randomUUID(),
    org: req.organization_id,
    act: activate ? answer.id : (answer.activation?.id ?? null),
    status: license.status,
    license_expires_at: license.expires_at ? rfc3339(Math.floor(Date.parse(license.expires_at) / 1000)) : null,
    benefit: license.benefit_id,
    usage: license.usage ?? 0,
    limit_usage: license.limit_usage ?? null,
    limit_activations: license.limit_activations ?? null,
    // The request's nonce, as the relay signs it (contract §5's freshness claim).
    ...(nonce == null ? {} : { nonce }),
  };
  const [h, m, f, i] = ['v4.public.', JSON.stringify(claims), '{"kid":"bench"}', req.conditions?.machine_fingerprint ?? ''].map((s) => Buffer.from(s));
  const sig = sign(null, pae([h, m, f, i]), privateKey);
  return `v4.public.${Buffer.concat([m, sig]).toString('base64url')}.${f.toString('base64url')}`;
}

// ---- the relay: the emulator's answers, a lease on the activation ----------------------------
const relay = createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks);
  const resp = await fetch(`${url}${req.url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const answer = Buffer.from(await resp.arrayBuffer());
  const headers = { 'content-type': 'application/json' };
  if (resp.status === 200 && !req.url.endsWith('/deactivate')) {
    headers['polar-license-lease'] = lease(
      JSON.parse(body),
      JSON.parse(answer),
      clock.now,
      req.url.endsWith('/activate'),
      req.headers['polar-license-nonce'],
    );
  }
  res.writeHead(resp.status, headers);
  res.end(answer);
});
await new Promise((ok) => relay.listen(0, '127.0.0.1', ok));
const relayUrl = `http://127.0.0.1:${relay.address().port}`;

// ---- one activation through the package, its record read back ---------------------------------
const { LicenseClient } = await importPackage(pkg);
// The engine's glue apart from node.js's copy (node.js is one bundled module, issue #38).
const glue = await importPackage(pkg, 'polar_license.js');
glue.initSync({ module: readFileSync(join(pkg, 'polar_license_bg.wasm')) });
const { Engine } = glue;
const clock = { now: Math.floor(Date.now() / 1000) };
const map = new Map();
const storage = { get: (k) => map.get(k) ?? null, set: (k, v) => void map.set(k, v), remove: (k) => void map.delete(k) };
const options = { organizationId: org, baseUrl: relayUrl, machineId: 'bench-machine', appSecret: 'bench' };
const client = new LicenseClient({ ...options, storage, relayKeys: [pair], clock: () => clock.now * 1000 });
const activated = await client.activate(DEMO_KEY, { label: `bench-${Date.now()}` });
if (!activated.lease) throw new Error('the activation stored no lease that verifies');
const signed = new Engine(JSON.stringify({ ...options, relayKeys: pair }), 'null');
const unsigned = new Engine(JSON.stringify(options), 'null');
const [slot, ledgerName] = signed.call('names', [DEMO_KEY]).split(' ');
// The stored record as the activation left it, then as a validate a second later left it (a
// new lease), both read before the deactivation below.
const secret = map.get('polar-license.install-secret');
const args = [DEMO_KEY, secret, map.get(slot), map.get(ledgerName), clock.now + 2];
clock.now += 1;
await client.validate(DEMO_KEY, { activationId: activated.activation.id });
const other = [DEMO_KEY, secret, map.get(slot), map.get(ledgerName), clock.now + 1];
const tokenOf = (record) => /v4\.public\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/.exec(record)?.[0] ?? '';
const token = tokenOf(args[2]);
if (tokenOf(other[2]) === token || !token) throw new Error('the validate stored no second lease');
await client.deactivate(DEMO_KEY); // the demo key's activation slot back
relay.close();
/** The signatures a step asks for (issue #38), verified by node:crypto as the node entry does. */
const hexBytes = (h) => Buffer.from(h, 'hex');
const publicKeys = new Map();
function host(key, message, signature) {
  let object = publicKeys.get(key);
  if (!object) {
    object = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: hexBytes(key).toString('base64url') }, format: 'jwk' });
    publicKeys.set(key, object);
  }
  return verify(null, hexBytes(message), object, hexBytes(signature));
}
/** `engine.call(name, a)`, the verification asked for first answered by the host. */
function step(engine, name, a) {
  let text = engine.call(name, a);
  const asked = text.startsWith('{"verify":') ? JSON.parse(text).verify : [];
  if (asked.length) {
    engine.call('verified', asked.flatMap(([id, key, message, signature]) => [id, host(key, message, signature) ? 1 : 0]));
    text = engine.call(name, a);
  }
  return { text, asked };
}
let asked = [];
for (const a of [args, other]) {
  const out = step(signed, 'status', a);
  asked = asked.concat(out.asked);
  const s = JSON.parse(out.text).ok;
  if (s.state !== 'present' || !s.lease) throw new Error(`no verified lease to bench: ${JSON.stringify(s)}`);
}
if (asked.length !== 2) throw new Error(`expected one signature asked per lease, got ${asked.length}`);

/** µs for n status calls, on the two records in turn (`alternate`) or on one. */
function time(engine, alternate) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) engine.call('status', alternate && i % 2 ? other : args);
  return (performance.now() - t0) * 1000;
}
const runs = { signed: [signed, true], unsigned: [unsigned, true], signedOne: [signed, false], unsignedOne: [unsigned, false] };
for (const [engine, alternate] of Object.values(runs)) time(engine, alternate); // warm up
const totals = Object.fromEntries(Object.keys(runs).map((name) => [name, 0]));
for (let r = 0; r < rounds; r++) {
  const names = Object.keys(runs);
  for (const name of r % 2 === 0 ? names : names.reverse()) totals[name] += time(...runs[name]);
}
const calls = n * rounds;
const per = (name) => totals[name] / calls;
// The host's part: node:crypto's verification of the two signatures asked, in turn.
const hostCalls = Math.max(100, n / 4);
for (let i = 0; i < hostCalls; i++) host(...asked[i % 2].slice(1));
let t0 = performance.now();
for (let i = 0; i < hostCalls; i++) host(...asked[i % 2].slice(1));
const hostUs = ((performance.now() - t0) * 1000) / hostCalls;
// A new engine's first status with a lease: the ask, the host's verification, the step again.
const firsts = 50;
const engines = Array.from({ length: firsts }, () => new Engine(JSON.stringify({ ...options, relayKeys: pair }), 'null'));
t0 = performance.now();
for (const engine of engines) step(engine, 'status', args);
const firstUs = ((performance.now() - t0) * 1000) / firsts;
console.log(
  JSON.stringify({
    calls_each: calls,
    status_unsigned_us: +per('unsigned').toFixed(1),
    status_signed_us: +per('signed').toFixed(1),
    lease_verify_us: +(per('signed') - per('unsigned')).toFixed(1),
    lease_memo_us: +(per('signedOne') - per('unsignedOne')).toFixed(1),
    host_verify_us: +hostUs.toFixed(1),
    first_lease_us: +firstUs.toFixed(1),
    lease_bytes: token.length,
    node: process.version,
  }),
);
