// The package's IO layer (license.js does fetch and storage around the wasm engine): the
// request timeout, bodies that are cut, too large or not Polar's, status codes, and storage
// adapters that answer with promises, throw or return junk. Faults come from a scripted HTTP
// server started here (so no other test file shares its state); licensed answers from the
// emulator.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { EMULATOR, ORG, newKey, pkg, rejection, relay } from './emulator.mjs';

const { LicenseClient, LicenseError } = await pkg();

let server;
let url;
let answer = () => {};

before(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(res));
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  url = `http://127.0.0.1:${server.address().port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

function scripted(options = {}) {
  return new LicenseClient({ organizationId: ORG, baseUrl: url, storage: 'memory', ...options });
}

test('a request that outlives the timeout is offline with timeout: true', async () => {
  answer = () => {}; // never answers
  const started = Date.now();
  const e = await rejection(scripted({ timeout: 0.5 }).validate('K-TIMEOUT'));
  assert.ok(e instanceof LicenseError);
  assert.deepEqual([e.code, e.kind, e.timeout], ['offline', 'unverified', true]);
  assert.equal(e.detail, 'no complete answer within 500 ms');
  assert.ok(Date.now() - started < 5000);
});

test('a body without content-length is capped as it streams and the connection let go', async () => {
  // A chunked answer that would go on for 64 MB: refused once past the 1 MiB cap, and the
  // client closes the connection (the server sees it closed long before the end).
  const total = 64 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  let closed;
  const streamed = new Promise((ok) => (closed = ok));
  answer = (res) => {
    let sent = 0;
    res.writeHead(200, { 'content-type': 'application/json' }); // chunked: no length
    const pump = () => {
      while (sent < total && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) return res.once('drain', pump);
      }
      if (sent >= total) res.end();
    };
    res.on('close', () => closed({ sent, finished: res.writableFinished }));
    pump();
  };
  const e = await rejection(scripted().validate('K-STREAM'));
  assert.deepEqual([e.code, e.detail], ['protocol_error', 'response body larger than the cap of 1048576 bytes']);
  const { sent, finished } = await streamed;
  assert.equal(finished, false, 'the whole body was written: the client read it all');
  assert.ok(sent < total, `the server wrote ${sent} of ${total} bytes`);
});

test('cut, oversized and non-JSON bodies are protocol errors; 5xx and 429 are unverified', async () => {
  answer = (res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
    res.write('{"id":', () => setTimeout(() => res.destroy(), 20));
  };
  let e = await rejection(scripted().validate('K-1'));
  assert.equal(e.code, 'protocol_error');
  assert.match(e.detail, /^truncated response body: /);

  answer = (res) => res.writeHead(200, { 'content-length': String(2 * 1024 * 1024) }).end();
  e = await rejection(scripted().validate('K-1'));
  assert.deepEqual([e.code, e.detail], ['protocol_error', 'response body larger than the cap of 1048576 bytes']);

  answer = (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('not json');
  e = await rejection(scripted().validate('K-1'));
  assert.deepEqual([e.code, e.status], ['protocol_error', 200]);
  assert.match(e.detail, /^malformed validate response: /);

  answer = (res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('Internal Server Error');
  e = await rejection(scripted().check('K-1'));
  assert.deepEqual([e.code, e.kind, e.status], ['server_error', 'unverified', 500]);

  answer = (res) => res.writeHead(429, { 'retry-after': '30' }).end();
  const limited = scripted();
  e = await rejection(limited.check('K-1'));
  assert.deepEqual([e.code, e.retryAfter], ['rate_limited', 30]);
  // The block is kept: within it, nothing is sent.
  let asked = false;
  answer = (res) => {
    asked = true;
    res.writeHead(500).end();
  };
  e = await rejection(limited.check('K-1'));
  assert.equal(e.code, 'rate_limited');
  assert.equal(asked, false);
});

test('an async storage adapter carries the cache to another client', async () => {
  const map = new Map();
  const later = (value) => new Promise((ok) => setTimeout(() => ok(value), 1));
  const storage = {
    get: (name) => later(map.get(name)),
    set: (name, value) => later(void map.set(name, value)),
    remove: (name) => later(void map.delete(name)),
  };
  const polar = await relay(EMULATOR);
  try {
    const key = await newKey();
    const online = await new LicenseClient({ organizationId: ORG, baseUrl: polar.url, storage }).check(key);
    assert.equal(online.source, 'online');
    // Three names: the install secret, the key's record and its ledger, none holding the key.
    const names = [...map.keys()].sort();
    assert.equal(names.length, 3);
    assert.equal(names[0], 'polar-license.install-secret');
    assert.match(map.get(names[0]), /^[0-9a-f]{64}$/);
    assert.match(names[1], /^polar-license\.v2-[0-9a-f]{32}$/);
    assert.equal(names[2], `${names[1]}-seq`);
    assert.match(map.get(names[1]), /^polar-license-cache v2\n\{.*\}\n[0-9a-f]{64}\n$/);
    assert.match(map.get(names[2]), /^polar-license-ledger v1\n1\n[0-9a-f]{64}\n$/);
    assert.ok(!map.get(names[1]).includes(key));
    polar.mode = 'hang'; // Polar unreachable (hangs): the cache answers within the grace
    const offline = new LicenseClient({
      organizationId: ORG,
      baseUrl: polar.url,
      storage,
      timeout: 0.3,
      gracePolicy: { revalidateAfter: 0 },
    });
    const cached = await offline.check(key);
    assert.deepEqual([cached.source, cached.license.key, cached.reason], ['cache', key, 'offline']);
    assert.ok(cached.graceRemaining > 6 * 86400);
    // A malformed install secret is replaced, which only invalidates the cache.
    map.set('polar-license.install-secret', 'not hex');
    const e = await rejection(offline.check(key));
    assert.deepEqual([e.code, e.timeout], ['offline', true]);
    assert.match(map.get('polar-license.install-secret'), /^[0-9a-f]{64}$/);
  } finally {
    await polar.close();
  }
});

test('a failing storage is cache_error, and never hides an answer from Polar', async () => {
  // A storage that keeps the install secret but cannot store records.
  const map = new Map();
  const storage = {
    get: (name) => map.get(name),
    set: (name, value) => {
      if (name !== 'polar-license.install-secret') throw new Error('disk full');
      map.set(name, value);
    },
    remove: (name) => void map.delete(name),
  };
  const key = await newKey();
  const c = new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage });
  const e = await rejection(c.activate(key, { label: 'l' }));
  assert.deepEqual([e.code, e.kind], ['cache_error', 'error']);
  assert.match(e.detail, /^activated as [0-9a-f-]{36}, but the cache could not remember it: /);
  assert.match(e.detail, /storage set\(\) threw: Error: disk full/);

  // check asks Polar all the same: licensed online, the cache not refreshed.
  const checked = await c.check(key);
  assert.deepEqual([checked.source, checked.cacheRefreshed], ['online', false]);

  // A storage that cannot even keep the install secret: no activation slot is taken (the
  // storage is tried first), and check is one online validate; with Polar unreachable too,
  // cache_error.
  const broken = {
    get: (name) => map.get(`broken.${name}`),
    set: () => {
      throw new Error('disk full');
    },
    remove: () => {},
  };
  const one = await newKey({ limit_activations: 1 });
  const refused = await rejection(new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: broken }).activate(one, { label: 'x' }));
  assert.deepEqual([refused.code, refused.detail], ['cache_error', 'storage set() threw: Error: disk full']);
  const { activation } = await new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory' }).activate(one, { label: 'y' });
  assert.equal(activation.label, 'y', 'the only activation slot was still free');
  const uncached = await new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: broken }).check(key);
  assert.deepEqual([uncached.source, uncached.cacheRefreshed], ['online', false]);
  answer = (res) => res.writeHead(503).end();
  const both = await rejection(new LicenseClient({ organizationId: ORG, baseUrl: url, storage: broken }).check(key));
  assert.equal(both.code, 'cache_error');
  assert.match(both.detail, /and Polar could not be asked: server error: status 503/);

  const junk = { get: () => 42, set: () => {}, remove: () => {} };
  const s = await rejection(new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: junk }).status(key));
  assert.deepEqual([s.code, s.detail], ['cache_error', 'storage returned a non-string value for "polar-license.install-secret"']);
});
