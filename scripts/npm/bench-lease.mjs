// Node benchmark of issue #25: what verifying a signed lease costs in the npm package's wasm.
//
//   node scripts/npm/bench-lease.mjs URL ORG PACKAGE_DIR [N=2000] [ROUNDS=5]
//
// URL is a running emulator (`polar-license emulator --port 0`), ORG its organization, and
// PACKAGE_DIR the built package (target/npm/pkg, from scripts/build-npm.sh). A stand-in relay in
// this process signs a PASETO v4.public lease (node:crypto Ed25519, as tests/js/signed.test.mjs)
// on the grant of one activation of the demo key made through the package; then the stored
// record, its ledger and the install secret are read back, and the engine's `status` step
// (open the record: MAC, ledger, and in signed mode `session::gate_lease`, which verifies the
// lease once) is called N times by an engine with the relay key and N times by one without,
// alternating in ROUNDS rounds. The difference per call is the lease verification (PASETO
// parse, Ed25519 verify, claims JSON, the checks against the record). Prints one JSON object.
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
function lease(req, answer, now) {
  const license = answer.license_key;
  const claims = {
    iss: 'polar-license-relay',
    sub: createHash('sha256').update(req.key).digest('hex'),
    iat: rfc3339(now),
    nbf: rfc3339(now),
    exp: rfc3339(now + 7 * 86400),
    jti: randomUUID(),
    org: req.organization_id,
    act: answer.id,
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
  if (resp.status === 200 && req.url.endsWith('/activate')) {
    headers['polar-license-lease'] = lease(JSON.parse(body), JSON.parse(answer), Math.floor(Date.now() / 1000));
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
const map = new Map();
const storage = { get: (k) => map.get(k) ?? null, set: (k, v) => void map.set(k, v), remove: (k) => void map.delete(k) };
const options = { organizationId: org, baseUrl: relayUrl, machineId: 'bench-machine', appSecret: 'bench' };
const client = new LicenseClient({ ...options, storage, relayKeys: [pair] });
const activated = await client.activate(DEMO_KEY, { label: `bench-${Date.now()}` });
if (!activated.lease) throw new Error('the activation stored no lease that verifies');
const signed = new Engine(JSON.stringify({ ...options, relayKeys: pair }), 'null');
const unsigned = new Engine(JSON.stringify(options), 'null');
const slot = signed.call('slot', [DEMO_KEY]);
const ledgerName = signed.call('ledger', [DEMO_KEY]);
// The stored record as the activation left it (read before the deactivation below).
const args = [DEMO_KEY, map.get('polar-license.install-secret'), map.get(slot), map.get(ledgerName), Math.floor(Date.now() / 1000)];
const token = /v4\.public\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/.exec(args[2])?.[0] ?? '';
await client.deactivate(DEMO_KEY); // the demo key's activation slot back
relay.close();
const check = JSON.parse(signed.call('status', args)).ok;
if (check.state !== 'present' || !check.lease) throw new Error(`no verified lease to bench: ${JSON.stringify(check)}`);

function time(engine) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) engine.call('status', args);
  return (performance.now() - t0) * 1000; // µs
}
time(signed);
time(unsigned); // warm up both
const totals = { signed: 0, unsigned: 0 };
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? ['signed', 'unsigned'] : ['unsigned', 'signed'];
  for (const name of order) totals[name] += time(name === 'signed' ? signed : unsigned);
}
const calls = n * rounds;
const per = (name) => totals[name] / calls;
console.log(
  JSON.stringify({
    calls_each: calls,
    status_signed_us: +per('signed').toFixed(1),
    status_unsigned_us: +per('unsigned').toFixed(1),
    lease_verify_us: +(per('signed') - per('unsigned')).toFixed(1),
    lease_bytes: token.length,
    node: process.version,
  }),
);
