// Issue #25: the npm package's `polar-license/relay` handler, from the installed tarball, run
// for real in node (node:http through createNodeListener) and in Cloudflare's Workers runtime
// (the `workerd` npm package, offline: its outbound service is the emulator). Each host plays
// the same scenarios: the package's own client in signed mode activates and validates through
// the relay and licenses offline from the lease it got; Polar's answers (denials, 422s, 404s)
// pass through byte for byte with no lease; preflights, oversized bodies, bodies nested past the
// parser's limit and a key over its rate are answered without asking Polar. In node also: a signing key whose halves disagree is
// refused at start, and a CryptoKey that is not the configured key's gives grants without a
// lease (never one nobody can verify).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { freePort, relayUnderWorkerd } from './workerd.mjs';
import { DEAD, EMULATOR, ORG, PACKAGE_DIR, importAsApp, mapStorage, newKey, pkg, rejection, relaySigningKey } from './emulator.mjs';

const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const ROUTES = '/v1/customer-portal/license-keys';
const { LicenseClient } = await pkg();

// `polar-license/relay` resolved as an app resolves it (the exports map's `node` condition).
const relayPkg = await importAsApp('relay-import.mjs', 'polar-license/relay');
const manifest = JSON.parse(await readFile(join(PACKAGE_DIR, 'package.json'), 'utf8'));

const SIGNER = relaySigningKey('relay-js');


/** The relay in node: createRelay + createNodeListener on loopback. */
async function nodeHost(options = {}) {
  // Every request here comes from 127.0.0.1: a per-IP limit high enough for the suite.
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNER.text, baseUrl: EMULATOR, perIp: '1000/1000', ...options });
  const server = createServer(relayPkg.createNodeListener(relay));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// A token Polar (the emulator) does not know: every call it makes is refused (401).
const WRONG_TOKEN = 'polar_oat_emulator_wrong_0123456789abcdef';

// The worker an app would write: one relay, (under /limited/) one whose key limit is 1/1, and
// (under /wrong/) one whose token Polar refuses.
const WORKER = `import { createRelay } from './polar-license/ENTRY';
let relay;
let limited;
let wrong;
let perIp;
export default {
  async fetch(request, env, ctx) {
    const options = { accessToken: env.POLAR_ACCESS_TOKEN, signingKey: env.RELAY_SIGNING_KEY, baseUrl: 'POLAR_URL', perIp: '1000/1000' };
    const url = new URL(request.url);
    if (url.pathname.startsWith('/limited/')) {
      limited ??= createRelay({ ...options, perKey: '1/1' });
      url.pathname = url.pathname.slice('/limited'.length);
      return limited.fetch(new Request(url, request), env, ctx);
    }
    if (url.pathname.startsWith('/broken/')) {
      // Options the core refuses (a lease of 0 days): every answer is the host's 500.
      url.pathname = url.pathname.slice('/broken'.length);
      return createRelay({ ...options, leaseDays: 0, corsOrigins: ['https://app.example'] }).fetch(new Request(url, request), env, ctx);
    }
    if (url.pathname.startsWith('/perip/')) {
      perIp ??= createRelay({ ...options, perIp: '1/1' });
      url.pathname = url.pathname.slice('/perip'.length);
      return perIp.fetch(new Request(url, request), env, ctx);
    }
    if (url.pathname.startsWith('/wrong/')) {
      wrong ??= createRelay({ ...options, accessToken: '${WRONG_TOKEN}' });
      url.pathname = url.pathname.slice('/wrong'.length);
      return wrong.fetch(new Request(url, request), env, ctx);
    }
    relay ??= createRelay(options);
    return relay.fetch(request, env, ctx);
  },
};
`;

/** The relay under workerd: the files of the installed package the `workerd` condition names. */
async function workerdHost() {
  // The emulator's URL: its outbound service sends every fetch there anyway.
  return relayUnderWorkerd({
    port: await freePort(),
    worker: WORKER,
    polarUrl: EMULATOR,
    bindings: { POLAR_ACCESS_TOKEN: TOKEN, RELAY_SIGNING_KEY: SIGNER.text },
    probe: `${ROUTES}/validate`,
  });
}

const post = (base, route, body, headers = {}) =>
  fetch(`${base}${route.startsWith('/') ? route : `${ROUTES}/${route}`}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

const HOSTS = { node: nodeHost, workerd: workerdHost };
const running = {};
before(async () => {
  for (const [name, start] of Object.entries(HOSTS)) running[name] = await start();
});
after(async () => {
  for (const host of Object.values(running)) await host.close();
});

test('the exports map: workerd, node and the default entry for polar-license/relay', () => {
  const entry = manifest.exports['./relay'];
  assert.deepEqual(Object.keys(entry), ['types', 'workerd', 'node', 'default']);
  for (const file of Object.values(entry)) assert.ok(manifest.files.includes(file.replace('./', '')), file);
  assert.equal(typeof relayPkg.createRelay, 'function');
  assert.equal(typeof relayPkg.createNodeListener, 'function');
});

for (const name of Object.keys(HOSTS)) {
  const host = () => running[name];

  test(`${name}: a signed client activates and validates through the relay, then licenses offline from the lease`, async () => {
    const key = await newKey();
    const storage = mapStorage();
    const app = (more = {}) =>
      new LicenseClient({ organizationId: ORG, baseUrl: host().url, machineId: `machine-${name}`, storage, relayKeys: [SIGNER.pair], ...more });
    const activated = await app().activate(key, { label: name });
    assert.equal(activated.lease?.kid, 'relay-js', JSON.stringify(activated));
    const days = (activated.lease.expiresAt * 1000 - Date.now()) / 86_400_000;
    assert.ok(days > 6.9 && days <= 7, `a 7-day lease: ${activated.lease.expiresAt}`);
    const validated = await app().validate(key);
    assert.equal(validated.lease?.kid, 'relay-js');
    // The relay out of reach: the lease licenses.
    const offline = await app({ fetch: () => Promise.reject(new TypeError('fetch failed')) }).check(key);
    assert.equal(offline.source, 'cache', JSON.stringify(offline));
    assert.equal(offline.lease?.kid, 'relay-js');
  });

  test(`${name}: Polar's answers pass through byte for byte, without a lease`, async () => {
    const key = await newKey();
    const cases = [
      ['validate', '{"key": "unterminated'],
      ['validate', { organization_id: ORG }],
      ['validate', { key: 'NO-SUCH-KEY-7F3A', organization_id: ORG }],
      ['activate', { key, organization_id: ORG }],
      ['deactivate', { key, organization_id: ORG, activation_id: '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b' }],
      ['validate', { key, organization_id: ORG, activation_id: 'not-a-uuid' }],
    ];
    for (const [route, body] of cases) {
      const direct = await post(EMULATOR, route, body);
      const relayed = await post(host().url, route, body);
      const what = `${route} ${JSON.stringify(body)}`;
      assert.equal(relayed.status, direct.status, what);
      assert.equal(await relayed.text(), await direct.text(), what);
      assert.equal(relayed.headers.get('polar-license-lease'), null, what);
      assert.equal(relayed.headers.get('access-control-allow-origin'), '*', what);
    }
    // A revoked key: Polar's answer, no lease.
    const revoked = await newKey({ status: 'revoked' });
    const body = { key: revoked, organization_id: ORG };
    const answer = await post(host().url, 'validate', body);
    assert.equal(answer.status, (await post(EMULATOR, 'validate', body)).status);
    assert.equal(answer.headers.get('polar-license-lease'), null);
  });

  test(`${name}: preflights, unknown routes and oversized bodies are answered without Polar`, async () => {
    const pre = await fetch(`${host().url}${ROUTES}/activate`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
    });
    assert.ok(pre.status === 204 || pre.status === 200, String(pre.status));
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    assert.match(pre.headers.get('access-control-expose-headers') ?? '', /polar-license-lease/i);
    assert.equal((await fetch(`${host().url}/v1/other`, { method: 'POST' })).status, 404);
    const huge = await post(host().url, 'validate', JSON.stringify({ key: 'K'.repeat(64 * 1024), organization_id: ORG }));
    assert.equal(huge.status, 413);
    const text = await huge.text();
    assert.ok(!text.includes(TOKEN));
  });

  // Issue #62: 10,000 `[` overflowed the core's stack (natively an abort; under workerd the
  // wasm instance answered 500 to every later request). Now Polar's 400 for that body alone.
  test(`${name}: a body nested 10,000 deep is Polar's 400 for it alone, and the next check is answered`, async () => {
    const key = await newKey();
    for (const body of ['['.repeat(10_000), '{"a":'.repeat(10_000), '['.repeat(64 * 1024)]) {
      for (const route of ['validate', 'activate', 'deactivate']) {
        const relayed = await post(host().url, route, body);
        const what = `${route}: ${body.slice(0, 5)}… (${body.length} bytes)`;
        assert.equal(relayed.status, 400, what);
        assert.equal(await relayed.text(), '{"detail":"There was an error parsing the body"}', what);
      }
      // (One call to Polar per body: the emulator, as Polar, answers 429 past 3 a second.)
      const next = await post(host().url, 'validate', { key, organization_id: ORG });
      assert.equal(next.status, 200, `the validate after ${body.slice(0, 5)}…: ${await next.text()}`);
      await new Promise((r) => setTimeout(r, 400));
    }
  });
}

test('workerd: a key over its rate gets 429 with Retry-After and no call', async () => {
  const key = await newKey();
  const url = `${running.workerd.url}/limited`;
  const first = await post(url, `${ROUTES}/validate`, { key, organization_id: ORG });
  assert.equal(first.status, 200, await first.text());
  const second = await post(url, `${ROUTES}/validate`, { key, organization_id: ORG });
  assert.equal(second.status, 429);
  assert.ok(Number(second.headers.get('retry-after')) >= 1);
  assert.ok(!running.workerd.output().includes(TOKEN), 'the token is never logged');
});

// Issue #63 item 3: the relay's answer when its host fails (here: options the core refuses)
// carries the core's CORS rule, the configured origins, as every answer does: never `*` then.
for (const name of Object.keys(HOSTS)) {
  test(`${name}: a relay that cannot start answers 500 with the configured CORS origin, not *`, async () => {
    const node = name === 'node' ? await nodeHost({ leaseDays: 0, corsOrigins: ['https://app.example'] }) : null;
    const base = node ? node.url : `${running.workerd.url}/broken`;
    try {
      for (const [origin, granted] of [['https://app.example', 'https://app.example'], ['https://evil.example', null]]) {
        const answer = await post(base, 'validate', { key: 'ANY-KEY-1', organization_id: ORG }, { origin });
        assert.equal(answer.status, 500);
        assert.equal(answer.headers.get('access-control-allow-origin'), granted, origin);
        assert.equal(answer.headers.get('polar-license-source'), 'relay');
        assert.deepEqual(await answer.json(), { detail: 'the relay is not configured correctly' });
      }
    } finally {
      await node?.close();
    }
  });
}

// Issue #63 item 3: which address counts for the per-IP limit is the core's rule. On Workers
// (no socket peer) it is Cloudflare's `cf-connecting-ip`; on node the socket's address, and a
// client that writes that header picks no bucket of its own.
test('workerd: the per-IP limit counts by cf-connecting-ip (the core reads it on Workers)', async () => {
  const from = async (ip) => (await post(`${running.workerd.url}/perip`, 'validate', { key: 'ANY-KEY-1', organization_id: ORG }, { 'cf-connecting-ip': ip })).status;
  assert.notEqual(await from('203.0.113.1'), 429);
  assert.equal(await from('203.0.113.1'), 429);
  assert.notEqual(await from('203.0.113.2'), 429, 'another address, a bucket of its own');
});

test('node: the per-IP limit counts by the socket, whatever cf-connecting-ip says', async () => {
  const host = await nodeHost({ perIp: '1/1' });
  try {
    const from = async (ip) => (await post(host.url, 'validate', { key: 'ANY-KEY-1', organization_id: ORG }, { 'cf-connecting-ip': ip })).status;
    assert.notEqual(await from('203.0.113.1'), 429);
    assert.equal(await from('203.0.113.2'), 429, 'the same socket address: the same bucket');
  } finally {
    await host.close();
  }
});

// Issue #63 item 3: a request node takes and fetch cannot (a TRACE: `new Request` refuses it)
// is answered by createNodeListener with the core's failure answer, its CORS grant narrowed to
// corsOrigins as every other answer (it was a bare 500 with no grant, whatever the option said).
test("node: the node listener's own 500 carries the core's CORS grant", async () => {
  const host = await nodeHost({ corsOrigins: ['https://app.example'] });
  const { request } = await import('node:http');
  const trace = (origin) =>
    new Promise((resolve, reject) => {
      const req = request(`${host.url}${ROUTES}/validate`, { method: 'TRACE', headers: { origin } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
  try {
    const page = await trace('https://app.example');
    assert.equal(page.status, 500, page.body);
    assert.equal(page.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(page.headers['polar-license-source'], 'relay');
    assert.match(page.body, /"detail"/);
    const other = await trace('https://evil.example');
    assert.equal(other.status, 500);
    assert.equal(other.headers['access-control-allow-origin'], undefined, 'no grant for another origin');
  } finally {
    await host.close();
  }
});

// Issue #63 item 4: the core's log lines reach the Workers host (its console), as they reach
// `relay serve`'s stderr: a token Polar refuses is the seller's problem, an error line (never
// the token), and the client's answer a 502.
const REFUSED_LINE = "polar-license relay: Polar refused the relay's access token (401)";

test("workerd: a token Polar refuses is an error line in the Worker's log, and a 502", async () => {
  const key = await newKey();
  const answer = await post(`${running.workerd.url}/wrong`, `${ROUTES}/validate`, { key, organization_id: ORG });
  assert.equal(answer.status, 502, await answer.text());
  const end = Date.now() + 5000;
  while (!running.workerd.output().includes(REFUSED_LINE) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  const output = running.workerd.output();
  assert.ok(output.includes(REFUSED_LINE), `the refused token's error line in workerd's output: ${output.slice(-2000)}`);
  assert.ok(!output.includes(WRONG_TOKEN) && !output.includes(TOKEN), 'the token is never logged');
});

test("node: a token Polar refuses is a console.error line, Polar out of reach a console.warn line", async () => {
  const lines = [];
  const saved = { error: console.error, warn: console.warn, log: console.log };
  for (const level of Object.keys(saved)) console[level] = (text) => lines.push([level, String(text)]);
  let answer;
  let unreached;
  try {
    const relay = relayPkg.createRelay({ accessToken: WRONG_TOKEN, signingKey: SIGNER.text, baseUrl: EMULATOR });
    const body = JSON.stringify({ key: await newKey(), organization_id: ORG });
    answer = await relay.fetch(new Request(`http://relay.test${ROUTES}/validate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }));
    await relay.close();
    // Polar out of reach: the core's warning, through console.warn.
    const down = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNER.text, baseUrl: DEAD, timeoutMs: 3000 });
    unreached = await down.fetch(new Request(`http://relay.test${ROUTES}/validate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }));
    await down.close();
  } finally {
    Object.assign(console, saved);
  }
  assert.equal(answer.status, 502);
  const refused = lines.filter(([, text]) => text.startsWith(REFUSED_LINE));
  assert.deepEqual(refused.map(([level]) => level), ['error'], JSON.stringify(lines));
  // The setting named as the npm relay takes it (not `relay serve`'s --access-token).
  assert.ok(refused[0][1].includes("check createRelay's accessToken and"), refused[0][1]);
  assert.ok(lines.every(([, text]) => !text.includes(WRONG_TOKEN)), 'the token is never logged');
  assert.equal(unreached.status, 502);
  assert.ok(lines.some(([level, text]) => level === 'warn' && /^polar-license relay: validate \*{4}\S* 502 \(Polar unreachable: \w+\)$/.test(text)), JSON.stringify(lines));
});

test('node: Polar unreachable is a 502 that names no token; a bad key file is refused at start', async () => {
  const down = await nodeHost({ baseUrl: DEAD, timeoutMs: 3000 });
  try {
    const answer = await post(down.url, 'validate', { key: 'ANY-KEY-1', organization_id: ORG });
    assert.equal(answer.status, 502);
    assert.ok(!(await answer.text()).includes(TOKEN));
  } finally {
    await down.close();
  }
  const other = relaySigningKey('relay-js');
  // Another key's public half after this key's secret: the halves disagree.
  const mixed = `${SIGNER.text.slice(0, SIGNER.text.indexOf('.') + 'secret.'.length)}${Buffer.concat([
    Buffer.from(SIGNER.text.split('k4.secret.')[1], 'base64url').subarray(0, 32),
    Buffer.from(other.pair.split('k4.public.')[1], 'base64url'),
  ]).toString('base64url')}`;
  for (const signingKey of [mixed, 'relay-js=k4.secret.short', 'no-equals-sign', `relay-js=k4.public.${'A'.repeat(43)}`]) {
    const e = await rejection(relayPkg.createRelay({ accessToken: TOKEN, signingKey, baseUrl: EMULATOR }).ready());
    assert.match(e.message, /^signingKey: /, signingKey);
    const secret = signingKey.split('k4.secret.')[1];
    if (secret) assert.ok(!e.message.includes(secret), 'the secret is never in an error');
  }
  const e = await rejection(relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNER.text, baseUrl: EMULATOR, leaseDays: 0 }).ready());
  assert.match(e.message, /lease/i);
  assert.ok(!e.message.includes(TOKEN));
  // The calls' timeout is read by the core (issue #63 item 3), as --timeout: a positive time.
  for (const timeoutMs of [0, -5, 'soon']) {
    const late = await rejection(relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNER.text, baseUrl: EMULATOR, timeoutMs }).ready());
    assert.match(late.message, /^timeoutMs: /, String(timeoutMs));
  }
  // A token the core refuses: the error names the option, never the token.
  const badToken = 'polar_oat secret-7Q2Z';
  const t = await rejection(relayPkg.createRelay({ accessToken: badToken, signingKey: SIGNER.text, baseUrl: EMULATOR }).ready());
  assert.match(t.message, /access_token/);
  assert.ok(!t.message.includes('secret-7Q2Z'), t.message);
  const answer = await relayPkg.createRelay({ accessToken: badToken, signingKey: SIGNER.text, baseUrl: EMULATOR }).fetch(
    new Request(`http://relay.test${ROUTES}/validate`, { method: 'POST', body: '{}' }),
  );
  assert.equal(answer.status, 500);
  assert.ok(!(await answer.text()).includes('secret-7Q2Z'));
});

test('node: a CryptoKey that is not the configured key signs nothing a client would trust: grants come without a lease', async () => {
  const real = await relayPkg.importSigningKey(SIGNER.text);
  const impostor = await webcrypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  const host = await nodeHost({ signingKey: { ...real, key: impostor.privateKey } });
  try {
    const key = await newKey();
    const answer = await post(host.url, 'activate', { key, organization_id: ORG, label: 'impostor' });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('polar-license-lease'), null);
    const honest = await post(running.node.url, 'activate', { key, organization_id: ORG, label: 'honest' });
    assert.equal(honest.status, 200);
    assert.match(honest.headers.get('polar-license-lease') ?? '', /^v4\.public\./);
  } finally {
    await host.close();
  }
});
