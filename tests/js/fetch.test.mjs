// The `fetch` option: the app's own fetch sends every request to Polar (Electron's net.fetch,
// an undici fetch through a proxy). Here that fetch goes through a real HTTP forward proxy on
// loopback (absolute-form requests, as a company proxy takes them), built on node:http with no
// global fetch involved; the proxy counts what passed through it. A fetch that throws, rejects
// or resolves to something that is not a Response is a failure to reach Polar: the grace cache
// answers, it is never a denial.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { EMULATOR, ORG, newKey, pkg, rejection } from './emulator.mjs';

const { LicenseClient, LicenseError } = await pkg();

let proxy;
let proxyUrl;
let relayed = [];

before(async () => {
  // A forward proxy: `POST http://host:port/path HTTP/1.1` in, the same request out to the
  // origin, its answer back.
  proxy = createServer((req, res) => {
    const target = new URL(req.url);
    relayed.push(`${req.method} ${target.pathname}`);
    const out = request(target, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise((ok) => proxy.listen(0, '127.0.0.1', ok));
  proxyUrl = `http://127.0.0.1:${proxy.address().port}`;
});

after(() => {
  proxy.closeAllConnections();
  proxy.close();
});

/** A fetch over node:http through the proxy: what an app writes with its HTTP stack. */
function proxiedFetch(calls) {
  return (url, init) =>
    new Promise((ok, fail) => {
      calls.push([url, init.method, init.redirect, typeof init.signal?.aborted]);
      const proxied = new URL(proxyUrl);
      const req = request(
        { host: proxied.hostname, port: proxied.port, method: init.method, path: url, headers: Object.fromEntries(init.headers) },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const headers = Object.entries(res.headers).map(([k, v]) => [k, String(v)]);
            // A 204 (a deactivation) has no body, as Response requires.
            const body = res.statusCode === 204 ? null : Buffer.concat(chunks);
            try {
              ok(new Response(body, { status: res.statusCode, headers }));
            } catch (e) {
              fail(e);
            }
          });
        },
      );
      req.on('error', fail);
      init.signal?.addEventListener('abort', () => req.destroy(new Error('aborted')));
      req.end(init.body);
    });
}

function client(options) {
  return new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory', ...options });
}

test('every request goes through the app fetch, and its answers license as the global fetch does', async () => {
  const key = await newKey();
  const calls = [];
  relayed = [];
  // revalidateAfter 0: the check after the activation asks Polar too.
  const c = client({ fetch: proxiedFetch(calls), gracePolicy: { revalidateAfter: 0 } });
  const { activation } = await c.activate(key, { label: 'proxied' });
  assert.ok(activation.id);
  const checked = await c.check(key);
  assert.equal(checked.source, 'online');
  assert.equal(checked.license.status, 'granted');
  await c.deactivate(key);
  assert.deepEqual(relayed, [
    'POST /v1/customer-portal/license-keys/activate',
    'POST /v1/customer-portal/license-keys/validate',
    'POST /v1/customer-portal/license-keys/deactivate',
  ]);
  // Called like the global fetch: the URL, POST, redirects not followed, a timeout signal.
  assert.equal(calls.length, 3);
  for (const [url, method, redirect, signal] of calls) {
    assert.ok(url.startsWith(`${EMULATOR}/v1/customer-portal/license-keys/`), url);
    assert.deepEqual([method, redirect, signal], ['POST', 'manual', 'boolean']);
  }
});

test('a fetch that throws, rejects or resolves junk is offline, and the cache answers within the grace', async () => {
  const key = await newKey();
  let broken = null;
  const fetch = (url, init) => (broken ? broken(url, init) : globalThis.fetch(url, init));
  const c = client({ fetch, gracePolicy: { revalidateAfter: 0 } });
  assert.equal((await c.check(key)).source, 'online');
  const failures = [
    () => {
      throw new TypeError('proxy refused');
    },
    () => Promise.reject(new Error('ECONNRESET')),
    () => Promise.resolve(undefined),
    () => Promise.resolve({ status: 200 }),
  ];
  for (const failure of failures) {
    broken = failure;
    const e = await rejection(c.validate(key));
    assert.ok(e instanceof LicenseError);
    assert.deepEqual([e.code, e.kind], ['offline', 'unverified'], e.detail);
    const cached = await c.check(key);
    assert.equal(cached.source, 'cache', 'the grace cache answers');
  }
});

test('a fetch option that is not a function rejects every call with invalid_input, no request sent', async () => {
  for (const bad of ['http://proxy.example:3128', { fetch() {} }, null]) {
    let called = false;
    const c = client({ fetch: bad, storage: { get: () => { called = true; }, set() {}, remove() {} } });
    const e = await rejection(c.check('K-1'));
    assert.ok(e instanceof LicenseError);
    assert.equal(e.code, 'invalid_input');
    assert.match(e.detail, /fetch must be a function called like the global fetch .*, got /);
    assert.equal(called, false);
  }
});
