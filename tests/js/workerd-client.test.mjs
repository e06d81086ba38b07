// The client (not the relay) on Cloudflare Workers: `polar-license` resolved through its
// `workerd` export condition, from the installed tarball, run for real in the Workers runtime
// (the `workerd` npm package, offline; its outbound network reaches loopback). Workers compile no
// WebAssembly from bytes at run time, so the default entry (a fetched .wasm) and the inline one
// (an embedded .wasm) cannot load there; the workerd entry imports the .wasm as a compiled
// module. The Worker drives clients by name (`POST /run`), each kept in the isolate between
// requests, with the memory store or a custom asynchronous store; another Worker keeps a client's
// records in a Durable Object across a restart of the runtime; signed mode verifies leases with
// the runtime's WebCrypto. A loopback relay in front of the emulator makes Polar unreachable on
// demand.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, runWorkerd } from './workerd.mjs';
import { EMULATOR, ORG, PACKAGE_DIR, README_KEY, newKey, relay } from './emulator.mjs';
import { honest, signingKey, standIn } from './lease-relay.mjs';

const manifest = JSON.parse(await readFile(join(PACKAGE_DIR, 'package.json'), 'utf8'));

// The Worker an app would write, plus a way for the test to name the client, its options and
// the call. `storage: 'custom'` is an asynchronous store over a Map, `null` when absent (as a KV
// namespace's get is, in the README's example), one per client name, its writes counted.
const WORKER = `import { LicenseClient } from 'polar-license';
const clients = new Map();
const stores = new Map();
function customStore(name) {
  let s = stores.get(name);
  if (!s) {
    const map = new Map();
    s = { map, writes: 0, get: async (n) => map.get(n) ?? null, set: async (n, v) => { s.writes += 1; map.set(n, v); }, remove: async (n) => void map.delete(n) };
    stores.set(name, s);
  }
  return s;
}
export default {
  async fetch(request) {
    if (request.method !== 'POST') return new Response(null, { status: 204 });
    const { client: name, options, op, args, store, later } = await request.json();
    let entry = clients.get(name);
    if (!entry) {
      const clock = { later: 0 };
      const o = { organizationId: '${ORG}', ...options, clock: () => Date.now() + clock.later * 1000 };
      if (o.storage === 'custom') o.storage = customStore(store ?? name);
      entry = { client: new LicenseClient(o), clock };
      clients.set(name, entry);
    }
    entry.clock.later = later ?? 0;
    try {
      const value = await entry.client[op](...(args ?? []));
      const s = stores.get(store ?? name);
      return Response.json({ value, writes: s?.writes ?? null, userAgent: navigator.userAgent });
    } catch (e) {
      return Response.json({ error: { name: e.name, code: e.code, kind: e.kind, field: e.field, detail: e.detail, message: e.message } });
    }
  },
};
`;

// The same client inside a Durable Object, its store the object's storage: what outlives an
// isolate (and here, the runtime: its storage is on a disk directory workerd is restarted on).
// A new client for every request, as a new launch of an app would make one.
const DURABLE_WORKER = `import { LicenseClient } from 'polar-license';
export class LicenseStore {
  constructor(state) {
    this.storage = state.storage;
  }
  async fetch(request) {
    const { options, op, args, later } = await request.json();
    const storage = this.storage;
    const client = new LicenseClient({
      organizationId: '${ORG}',
      ...options,
      clock: () => Date.now() + (later ?? 0) * 1000,
      storage: { get: (n) => storage.get(n), set: (n, v) => storage.put(n, v), remove: (n) => storage.delete(n) },
    });
    try {
      const value = await client[op](...(args ?? []));
      return Response.json({ value, names: [...(await storage.list()).keys()] });
    } catch (e) {
      return Response.json({ error: { name: e.name, code: e.code, kind: e.kind, field: e.field, detail: e.detail, message: e.message } });
    }
  }
}
export default {
  async fetch(request, env) {
    if (request.method !== 'POST') return new Response(null, { status: 204 });
    return env.LICENSES.get(env.LICENSES.idFromName('app')).fetch(request);
  },
};
`;

/** workerd's config: the Worker, the package's files as an app's bundle would hold them;
 * with `storeDir`, the Durable Object namespace of DURABLE_WORKER on that directory. */
function capnp(port, files, storeDir, wasmAsData = false) {
  const module = (f) =>
    f.endsWith('.wasm') && !wasmAsData
      ? `(name = "node_modules/polar-license/${f}", wasm = embed "${f}")`
      : f.endsWith('.wasm')
        ? `(name = "node_modules/polar-license/${f}", data = embed "${f}")`
        : `(name = "node_modules/polar-license/${f}", esModule = embed "${f}")`;
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .client),
    (name = "net", network = (allow = ["local", "private", "public"])),
    ${storeDir ? `(name = "disk", disk = (path = "${storeDir}", writable = true)),` : ''}
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const client :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "polar-license", esModule = embed "index.js"),
    ${files.map(module).join(',\n    ')},
  ],
  compatibilityDate = "2026-11-01",
  ${storeDir ? `durableObjectNamespaces = [(className = "LicenseStore", uniqueKey = "polar-license-client-test")],
  durableObjectStorage = (localDisk = "disk"),
  bindings = [(name = "LICENSES", durableObjectNamespace = "LicenseStore")],` : ''}
  globalOutbound = "net",
);
`;
}

/** A Worker importing `entry` of the installed package (with the files it imports); with
 * `storeDir`, DURABLE_WORKER over a Durable Object stored there; with `wasmAsData`, the .wasm
 * given to the Worker as bytes (a bundler that does not import it as a module). */
async function worker(entry, files, storeDir, wasmAsData = false) {
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-workerd-client-'));
  for (const f of files) await copyFile(join(PACKAGE_DIR, f), join(dir, f));
  // `polar-license` as a bundler with the workerd condition resolves it: the entry the map names.
  await writeFile(join(dir, 'index.js'), `export * from 'node_modules/polar-license/${entry}';\n`);
  await writeFile(join(dir, 'worker.js'), storeDir ? DURABLE_WORKER : WORKER);
  const port = await freePort();
  await writeFile(join(dir, 'config.capnp'), capnp(port, files, storeDir, wasmAsData));
  const host = await runWorkerd(dir, port, '/');
  host.run = async (body) => {
    const resp = await fetch(`${host.url}/run`, { method: 'POST', body: JSON.stringify(body) });
    assert.equal(resp.status, 200, `the Worker failed: ${host.output()}`);
    return resp.json();
  };
  return host;
}

const WORKERD_FILES = ['workerd.js', 'license.js', 'polar_license.js', 'polar_license_bg.wasm', 'polar_license_stopped.js'];
let workers = {};
let polar;
before(async () => {
  polar = await relay(EMULATOR);
  workers.workerd = await worker(manifest.exports['.'].workerd.replace('./', ''), WORKERD_FILES);
});
after(async () => {
  for (const w of Object.values(workers)) await w.close();
  await polar?.close();
});

test('the exports map: polar-license and polar-license/inline resolve to workerd.js under the workerd condition', () => {
  for (const name of ['.', './inline']) {
    const entry = manifest.exports[name];
    assert.equal(entry.workerd, './workerd.js', name);
    // Before `browser`: wrangler resolves with both conditions, the first listed wins.
    const keys = Object.keys(entry);
    assert.ok(keys.indexOf('workerd') < keys.indexOf('browser'), `${name}: ${keys}`);
  }
  for (const f of WORKERD_FILES) assert.ok(manifest.files.includes(f), f);
});

test('workerd: a check asks Polar, then the memory store answers; a second client of the isolate shares it', async () => {
  const w = workers.workerd;
  const first = await w.run({ client: 'a', options: { baseUrl: polar.url, storage: 'memory' }, op: 'check', args: [README_KEY] });
  assert.equal(first.error, undefined, JSON.stringify(first.error));
  assert.equal(first.userAgent, 'Cloudflare-Workers', 'the Workers runtime ran it');
  assert.deepEqual([first.value.source, first.value.license.status, first.value.license.displayKey], ['online', 'granted', '****-4C5B6A']);
  const asked = polar.requests;
  const again = await w.run({ client: 'a', op: 'check', args: [README_KEY] });
  assert.equal(again.value.source, 'cache');
  const other = await w.run({ client: 'b', options: { baseUrl: polar.url, storage: 'memory' }, op: 'check', args: [README_KEY] });
  assert.equal(other.value.source, 'cache', 'the memory store is the realm\'s');
  assert.equal(polar.requests, asked, 'no request for a cached answer');
});

test('workerd: a custom asynchronous store keeps the grace through an outage, and a revocation ends it', async () => {
  const w = workers.workerd;
  const key = await newKey();
  const options = { baseUrl: polar.url, storage: 'custom', gracePolicy: { revalidateAfter: 60 } };
  try {
    const online = await w.run({ client: 'grace', options, op: 'check', args: [key] });
    assert.equal(online.value?.source, 'online', JSON.stringify(online));
    assert.ok(online.writes > 0, 'the record is written to the custom store');

    // Polar unreachable two hours later: the cache answers within the grace, saying why.
    polar.mode = 'down';
    const before = polar.requests;
    const offline = await w.run({ client: 'grace', op: 'check', args: [key], later: 7200 });
    assert.deepEqual([offline.value?.source, offline.value?.reason], ['cache', 'offline'], JSON.stringify(offline));
    assert.ok(polar.requests > before, 'Polar was asked');
    const validate = await w.run({ client: 'grace', op: 'validate', args: [key], later: 7200 });
    assert.equal(validate.error?.code, 'offline', 'validate is always online');

    // Back, and the key revoked: the denial is the verdict, and it is kept (a tombstone):
    // unreachable again, the cached grant no longer licenses; the error is the unverified one
    // as it is (src/grace.rs), never a grant.
    polar.mode = 'up';
    const revoked = await fetch(`${EMULATOR}/__emulator/keys/${key}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'revoked' }),
    });
    assert.equal(revoked.status, 200);
    const denied = await w.run({ client: 'grace', op: 'check', args: [key], later: 10800 });
    assert.deepEqual([denied.error?.code, denied.error?.kind], ['inactive', 'denied'], JSON.stringify(denied));
    polar.mode = 'down';
    const after = await w.run({ client: 'grace', op: 'check', args: [key], later: 14400 });
    assert.equal(after.value, undefined, `a revoked key rode the grace: ${JSON.stringify(after)}`);
    assert.deepEqual([after.error?.code, after.error?.kind], ['offline', 'unverified'], JSON.stringify(after));
  } finally {
    polar.mode = 'up';
  }
});

test('workerd: bad input is refused before any request; an unreachable Polar with no cache is offline', async () => {
  const w = workers.workerd;
  const before = polar.requests;
  const empty = await w.run({ client: 'input', options: { baseUrl: polar.url, storage: 'memory' }, op: 'check', args: [''] });
  assert.deepEqual([empty.error?.code, empty.error?.field], ['invalid_input', 'key']);
  const activation = await w.run({ client: 'input', op: 'validate', args: [README_KEY, { activationId: 'not-a-uuid' }] });
  assert.deepEqual([activation.error?.code, activation.error?.field], ['invalid_input', 'activation_id'], JSON.stringify(activation));
  assert.equal(polar.requests, before, 'nothing was sent');
  const dead = await w.run({ client: 'dead', options: { baseUrl: `http://127.0.0.1:${await freePort()}`, storage: 'memory' }, op: 'check', args: [README_KEY] });
  assert.deepEqual([dead.error?.code, dead.error?.kind], ['offline', 'unverified'], JSON.stringify(dead));
});

test('workerd: the default and inline entries cannot compile their wasm there, and their error names the workerd condition; the workerd entry given bytes says what it needs', async () => {
  const bundled = {
    browser: ['browser.js', 'polar_license_bg.wasm'],
    inline: ['inline.js', 'license.js', 'polar_license.js', 'polar_license_inline.js', 'polar_license_stopped.js'],
  };
  for (const [entry, files] of Object.entries(bundled)) {
    const w = await worker(files[0], files);
    workers[entry] = w;
    const r = await w.run({ client: 'x', options: { baseUrl: polar.url, storage: 'memory' }, op: 'check', args: [README_KEY] });
    assert.equal(r.error?.code, 'load_error', `${entry}: ${JSON.stringify(r)}`);
    assert.match(r.error.detail, /`workerd` export condition/, entry);
  }
  // The workerd entry given the .wasm as bytes (a bundler that imported it as data): its own
  // hint, not one sending the app to the entry it already uses.
  const bytes = await worker('workerd.js', WORKERD_FILES, undefined, true);
  workers.bytes = bytes;
  const r = await bytes.run({ client: 'x', options: { baseUrl: polar.url, storage: 'memory' }, op: 'check', args: [README_KEY] });
  assert.equal(r.error?.code, 'load_error', JSON.stringify(r));
  assert.match(r.error.detail, /workerd entry needs polar_license_bg\.wasm imported as a compiled WebAssembly module/);
});

test("workerd: signed mode verifies a relay's lease with the runtime's WebCrypto Ed25519 and refuses a forged one", async () => {
  const w = workers.workerd;
  const signer = signingKey('relay-workerd');
  const forger = signingKey('relay-workerd');
  const world = { requests: 0, down: false, now: () => Math.floor(Date.now() / 1000), lease: honest(signer) };
  await standIn(world, EMULATOR);
  try {
    const options = { baseUrl: world.url, storage: 'custom', machineId: 'workerd-machine', relayKeys: signer.pair };
    const key = await newKey();
    const activated = await w.run({ client: 'signed', options, op: 'activate', args: [key, { label: 'workerd' }] });
    assert.equal(activated.value?.lease?.kid, 'relay-workerd', JSON.stringify(activated));
    // Two hours later, the relay unreachable: the lease the client verified licenses.
    world.down = true;
    const offline = await w.run({ client: 'signed', op: 'check', args: [key], later: 7200 });
    assert.deepEqual([offline.value?.source, offline.value?.lease?.kid], ['cache', 'relay-workerd'], JSON.stringify(offline));

    // A lease signed by another key under the same kid: refused on its signature.
    world.down = false;
    world.lease = honest(forger);
    const forged = await w.run({ client: 'forged', options, op: 'activate', args: [await newKey(), { label: 'workerd' }] });
    assert.equal(forged.error?.code, 'protocol_error', JSON.stringify(forged));
    assert.match(forged.error.detail, /\(signature\)/);
  } finally {
    await world.close();
  }
});

test("workerd: a Durable Object's storage keeps the grace across a restart of the runtime", async () => {
  const storeDir = await mkdtemp(join(tmpdir(), 'polar-license-workerd-do-'));
  const entry = manifest.exports['.'].workerd.replace('./', '');
  const key = await newKey();
  const options = { baseUrl: polar.url };
  let w = await worker(entry, WORKERD_FILES, storeDir);
  try {
    const online = await w.run({ options, op: 'check', args: [key] });
    assert.equal(online.value?.source, 'online', JSON.stringify(online));
    assert.ok(online.names.length >= 2, `the record and the install secret are in the object's storage: ${online.names}`);
    await w.close();

    // A new runtime on the same disk, Polar unreachable, two hours later: the records it
    // reads back still verify (the install secret came back with them) and the grace answers.
    polar.mode = 'down';
    w = await worker(entry, WORKERD_FILES, storeDir);
    const offline = await w.run({ options, op: 'check', args: [key], later: 7200 });
    assert.deepEqual([offline.value?.source, offline.value?.reason], ['cache', 'offline'], JSON.stringify(offline));
    // A key never checked here has nothing to fall back on.
    const other = await w.run({ options, op: 'check', args: [README_KEY], later: 7200 });
    assert.equal(other.error?.code, 'offline', JSON.stringify(other));
  } finally {
    polar.mode = 'up';
    await w.close();
    await rm(storeDir, { recursive: true, force: true });
  }
});
