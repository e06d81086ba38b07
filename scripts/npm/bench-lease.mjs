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
// two records in turn (the core remembers the last lease it verified, so each call verifies
// one: `lease_verify_us`, PASETO parse, Ed25519, the claims, the checks) and on one record
// (every call after the first a remembered lease: `lease_memo_us`). The differences per call
// are the cost of signed mode. Prints one JSON object.
import { createServer } from 'node:http';
import { createHash, generateKeyPairSync, createPublicKey, randomUUID, sign } from 'node:crypto';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const DEMO_KEY = 'DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A';
const [url, org, pkgDir, nArg = '2000', roundsArg = '5'] = process.argv.slice(2);
if (!url || !org || !pkgDir) {
  console.error('usage: node scripts/npm/bench-lease.mjs URL ORG PACKAGE_DIR [N] [ROUNDS]');
  process.exit(2);
}
const n = Number.parseInt(nArg, 10);
const rounds = Number.parseInt(roundsArg, 10);

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
function lease(req, answer, now, activate) {
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
    headers['polar-license-lease'] = lease(JSON.parse(body), JSON.parse(answer), clock.now, req.url.endsWith('/activate'));
  }
  res.writeHead(resp.status, headers);
  res.end(answer);
});
await new Promise((ok) => relay.listen(0, '127.0.0.1', ok));
const relayUrl = `http://127.0.0.1:${relay.address().port}`;

// ---- one activation through the package, its record read back ---------------------------------
const pkg = resolve(pkgDir);
const { LicenseClient } = await import(pathToFileURL(join(pkg, 'node.js')).href);
const { Engine } = await import(pathToFileURL(join(pkg, 'polar_license.js')).href);
const clock = { now: Math.floor(Date.now() / 1000) };
const map = new Map();
const storage = { get: (k) => map.get(k) ?? null, set: (k, v) => void map.set(k, v), remove: (k) => void map.delete(k) };
const options = { organizationId: org, baseUrl: relayUrl, machineId: 'bench-machine', appSecret: 'bench' };
const client = new LicenseClient({ ...options, storage, relayKeys: [pair], clock: () => clock.now * 1000 });
const activated = await client.activate(DEMO_KEY, { label: `bench-${Date.now()}` });
if (!activated.lease) throw new Error('the activation stored no lease that verifies');
const signed = new Engine(JSON.stringify({ ...options, relayKeys: pair }), 'null');
const unsigned = new Engine(JSON.stringify(options), 'null');
const slot = signed.call('slot', [DEMO_KEY]);
const ledgerName = signed.call('ledger', [DEMO_KEY]);
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
for (const a of [args, other]) {
  const s = JSON.parse(signed.call('status', a)).ok;
  if (s.state !== 'present' || !s.lease) throw new Error(`no verified lease to bench: ${JSON.stringify(s)}`);
}

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
console.log(
  JSON.stringify({
    calls_each: calls,
    status_unsigned_us: +per('unsigned').toFixed(1),
    status_signed_us: +per('signed').toFixed(1),
    lease_verify_us: +(per('signed') - per('unsigned')).toFixed(1),
    lease_memo_us: +(per('signedOne') - per('unsignedOne')).toFixed(1),
    lease_bytes: token.length,
    node: process.version,
  }),
);
