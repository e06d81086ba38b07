// `polar-license/emulator` (issue #27): the local Polar of the npm package, from the installed
// tarball. startEmulator() serves the demo seed on a free port; LicenseClient activates,
// validates and checks against it with the documented answers; refusals are typed; the same
// requests get the same answers (status, headers, JSON modulo ids and times) from the Rust
// command line's emulator; the `polar-license-emulator` bin prints the CLI's banner and serves;
// close() frees the port; the CommonJS entry, a custom seed and faults work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  CLI,
  CONSUMER,
  DEMO_BENEFIT,
  DISABLED_KEY,
  EXPIRED_KEY,
  NEEDS_CLI,
  ORG,
  PACKAGE_DIR,
  README_KEY,
  REVOKED_KEY,
  importAsApp,
  mapStorage,
  pkg,
  rejection,
  started,
  stop,
} from './emulator.mjs';

const { LicenseClient } = await pkg();
// Imported through the package's exports map, as an app does.
const { startEmulator } = await importAsApp('emulator-entry.mjs', 'polar-license/emulator', '{ startEmulator }');

const ROUTE = '/v1/customer-portal/license-keys';

const client = (polar) =>
  new LicenseClient({ organizationId: polar.organizationId, baseUrl: polar.url, storage: mapStorage() });

/** Whether a port on 127.0.0.1 can be bound. */
function free(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

test('startEmulator(): the demo seed on a free port; activate, validate and check the demo key', async () => {
  const polar = await startEmulator();
  try {
    assert.match(polar.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(polar.url, `http://127.0.0.1:${polar.port}`);
    assert.notEqual(polar.port, 0);
    assert.equal(polar.organizationId, ORG);
    assert.equal(polar.keys[0], README_KEY);
    assert.deepEqual(polar.keys.slice(2, 5), [REVOKED_KEY, DISABLED_KEY, EXPIRED_KEY]);
    assert.match(polar.banner, new RegExp(`^key ${README_KEY} \\(granted, benefit ${DEMO_BENEFIT}, 3 activations\\)$`, 'm'));

    // The README's first call: a check with nothing cached asks Polar.
    const first = await client(polar).check(README_KEY);
    assert.equal(first.source, 'online');
    assert.equal(first.license.key, README_KEY);

    const c = client(polar);
    const { activation, license } = await c.activate(README_KEY, { label: 'laptop' });
    assert.equal(activation.label, 'laptop');
    assert.match(activation.id, /^[0-9a-f-]{36}$/);
    assert.equal(license.key, README_KEY);
    assert.equal(license.status, 'granted');
    assert.equal(license.benefitId, DEMO_BENEFIT);
    assert.deepEqual(polar.activations(README_KEY).map((a) => a.id), [activation.id]);

    const valid = await c.validate(README_KEY, { activationId: activation.id });
    assert.equal(valid.license.key, README_KEY);
    assert.equal(valid.activation.id, activation.id);

    // A check within the hour answers from the cache the validation refreshed.
    const verdict = await c.check(README_KEY);
    assert.equal(verdict.source, 'cache');
    assert.equal(verdict.activation.id, activation.id);
    assert.equal(polar.key(README_KEY).validations, 2);
    assert.equal(polar.requestCount(), 3);
  } finally {
    await polar.close();
  }
});

test('revoked, disabled, expired and unknown keys get the typed refusals', async () => {
  const polar = await startEmulator();
  try {
    const c = client(polar);
    for (const [key, code] of [
      [REVOKED_KEY, 'inactive'],
      [DISABLED_KEY, 'inactive'],
      [EXPIRED_KEY, 'expired'],
      ['NO-SUCH-KEY', 'not_found'],
    ]) {
      const e = await rejection(c.validate(key));
      assert.equal(e.name, 'LicenseError', `${key}: ${e}`);
      assert.equal(e.code, code, `${key}: ${e.message}`);
      assert.equal(typeof e.userMessage, 'string');
    }
    const e = await rejection(c.activate(REVOKED_KEY, { label: 'x' }));
    assert.equal(e.code, 'inactive');
  } finally {
    await polar.close();
  }
});

// Ids, times and the date vary from run to run and between the two emulators.
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/g;
const TIME = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)/g;
const normal = (text) => text.replace(UUID, '<uuid>').replace(TIME, '<time>');

async function exchange(base, req) {
  const resp = await fetch(`${base}${req.path}`, {
    method: req.method ?? 'POST',
    headers: req.headers ?? { 'content-type': 'application/json' },
    body: req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body),
  });
  const headers = {};
  for (const [k, v] of resp.headers) {
    if (!['date', 'connection', 'keep-alive', 'content-length'].includes(k)) headers[k] = normal(v);
  }
  return { status: resp.status, headers, body: normal(await resp.text()) };
}

test('the same requests get the same answers from the Rust emulator and the JS one', { skip: NEEDS_CLI }, async () => {
  const polar = await startEmulator();
  const rust = await started(CLI, ['emulator', '--port', '0'], 1);
  const rustUrl = rust.url;
  try {
    const body = (key, more = {}) => ({ key, organization_id: ORG, ...more });
    const requests = [
      { path: `${ROUTE}/validate`, body: body(README_KEY) },
      { path: `${ROUTE}/activate`, body: body(README_KEY, { label: 'one' }) },
      { path: `${ROUTE}/activate`, body: body(README_KEY, { label: 'two', meta: { a: 1 } }) },
      { path: `${ROUTE}/validate`, body: body(README_KEY, { increment_usage: 1 }) },
      { path: `${ROUTE}/validate`, body: body(REVOKED_KEY) },
      { path: `${ROUTE}/validate`, body: body(DISABLED_KEY) },
      { path: `${ROUTE}/validate`, body: body(EXPIRED_KEY) },
      { path: `${ROUTE}/validate`, body: body('NO-SUCH-KEY') },
      { path: `${ROUTE}/activate`, body: body('DEMO-NOACT-2B8E6F1A-3C4D-4E5F-8A9B-0C1D2E3F4A5B', { label: 'x' }) },
      { path: `${ROUTE}/validate`, body: { key: README_KEY } },
      { path: `${ROUTE}/validate`, body: '{"key": ' },
      { path: `${ROUTE}/deactivate`, body: body(README_KEY, { activation_id: '00000000-0000-4000-8000-000000000000' }) },
      { path: `${ROUTE}/validate`, method: 'GET' },
      { path: `${ROUTE}/validate`, body: body(README_KEY), headers: { 'content-type': 'application/json', 'polar-version': '2020-01' } },
      { path: `${ROUTE}/validate`, body: body(README_KEY), headers: { 'content-type': 'application/json', 'polar-version': '2027-01' } },
      { path: `/api${ROUTE}/validate`, body: body(README_KEY) },
      { path: `${ROUTE}/validate`, body: body(README_KEY), headers: { 'content-type': 'application/json', origin: 'https://app.example' } },
      {
        path: `${ROUTE}/validate`,
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      },
      { path: '/v1/nowhere', body: {} },
      { path: '/__emulator/health', method: 'GET', headers: {} },
      { path: '/__emulator/requests', method: 'GET', headers: {} },
    ];
    for (const req of requests) {
      const [js, native] = [await exchange(polar.url, req), await exchange(rustUrl, req)];
      assert.deepEqual(js, native, `${req.method ?? 'POST'} ${req.path} ${JSON.stringify(req.body)}`);
    }
    // The deactivation of a real activation, on each: 204 with no body.
    const id = (url) => fetch(`${url}/__emulator/keys/${README_KEY}/activations`).then((r) => r.json()).then((a) => a[0].id);
    for (const url of [polar.url, rustUrl]) {
      const r = await exchange(url, { path: `${ROUTE}/deactivate`, body: body(README_KEY, { activation_id: await id(url) }) });
      assert.deepEqual([r.status, r.body], [204, '']);
    }
  } finally {
    await stop(rust.child);
    await polar.close();
  }
});

test('the polar-license-emulator bin prints the banner of `polar-license emulator` and answers', async () => {
  const bin = join(CONSUMER, 'node_modules', '.bin', 'polar-license-emulator');
  const js = await started(bin, ['--port', '0'], 13);
  try {
    const url = js.url;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(js.lines[1], `organization ${ORG}`);
    assert.equal(js.lines[2], `key ${README_KEY} (granted, benefit ${DEMO_BENEFIT}, 3 activations)`);
    assert.match(js.lines[10], /^try: /);
    assert.equal(js.lines[11], 'token budget: 500 calls per 60s per organization (429 past it)');
    assert.equal(js.lines[12], 'serving until killed (Ctrl-C)');
    const polar = { url, organizationId: ORG };
    const verdict = await client(polar).check(README_KEY);
    assert.equal(verdict.source, 'online');
    if (CLI) {
      // The seed's lines are the command line's, line for line.
      const rust = await started(CLI, ['emulator', '--port', '0'], 13);
      await stop(rust.child);
      assert.deepEqual(js.lines.slice(1, 10), rust.lines.slice(1, 10));
      assert.equal(js.lines[11], rust.lines[11], 'the same token budget line');
    }
  } finally {
    await stop(js.child);
  }
});

test('close() frees the port; a port in use is an error', async () => {
  const polar = await startEmulator();
  assert.equal(await free(polar.port), false);
  const taken = await rejection(startEmulator({ port: polar.port }));
  assert.equal(taken.code, 'EADDRINUSE');
  await polar.close();
  assert.equal(await free(polar.port), true);
  await assert.rejects(fetch(`${polar.url}/__emulator/health`));
  await polar.close(); // twice is fine
});

test('a seed of its own, keys added and changed, faults', async () => {
  const org = '7b0e3a52-9c4d-4f1e-8a6b-2c3d4e5f6a7b';
  const polar = await startEmulator({
    seed: { organization_id: org, license_keys: [{ key: 'MINE-1', limit_activations: 1 }] },
  });
  try {
    assert.deepEqual([polar.organizationId, polar.keys], [org, ['MINE-1']]);
    const c = client(polar);
    await c.activate('MINE-1', { label: 'a' });
    assert.equal((await rejection(c.activate('MINE-1', { label: 'b' }))).code, 'activation_limit');

    polar.addKey({ key: 'MINE-2', limit_activations: 2 });
    assert.equal((await c.validate('MINE-2')).license.key, 'MINE-2');
    assert.equal(polar.updateKey('MINE-2', { status: 'revoked' }), true);
    assert.equal(polar.updateKey('NOPE', { status: 'revoked' }), false);
    assert.equal((await rejection(c.validate('MINE-2'))).code, 'inactive');
    const rotated = polar.rotateKey('MINE-1');
    assert.equal(typeof rotated, 'string');
    assert.equal(polar.key('MINE-1'), undefined);

    polar.setFault({ kind: 'status', status: 503, body: 'down' });
    const down = await rejection(c.validate(rotated));
    assert.equal(down.status, 503, down.message);
    polar.setFault({ kind: 'delay', ms: 200 });
    const t0 = Date.now();
    assert.equal((await c.validate(rotated)).license.key, rotated);
    assert.ok(Date.now() - t0 >= 150);
    polar.setFault({ kind: 'close_immediately' });
    assert.equal((await rejection(c.validate(rotated))).code, 'offline');
    polar.setFault(null);
    assert.equal((await c.validate(rotated)).license.key, rotated);
  } finally {
    await polar.close();
  }
  await assert.rejects(startEmulator({ seed: { organization_id: 'not-a-uuid' } }), /organization_id/);
  await assert.rejects(startEmulator({ nope: 1 }), /unknown option nope/);
});

test('the CommonJS entry', async () => {
  const require = createRequire(join(CONSUMER, 'package.json'));
  const { startEmulator: start } = require('polar-license/emulator');
  const polar = await start({ port: 0 });
  try {
    assert.equal((await client(polar).validate(README_KEY)).license.key, README_KEY);
  } finally {
    await polar.close();
  }
});

test('the default entry never loads the emulator: a copy without its files still checks keys', async () => {
  const polar = await startEmulator();
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-no-emulator-'));
  try {
    await cp(PACKAGE_DIR, dir, { recursive: true });
    for (const f of ['polar_license_emulator_bg.wasm', 'polar_license_emulator.js', 'emulator.js']) {
      await rm(join(dir, f));
    }
    assert.ok(!(await readdir(dir)).some((f) => f.includes('emulator_bg')));
    const m = await import(pathToFileURL(join(dir, 'node.js')).href);
    const c = new m.LicenseClient({ organizationId: ORG, baseUrl: polar.url, storage: mapStorage() });
    assert.equal((await c.validate(README_KEY)).license.key, README_KEY);
  } finally {
    await polar.close();
    await rm(dir, { recursive: true, force: true });
  }
});

/** What a fetch of the demo key's validation gets: status and body, or the failure's stage.
 * `timeoutMs` is short for `hang` (what times out must not hold the suite), long for a slow
 * body (1,345 bytes at 1 ms each took over 1.5 s on a loaded 2-core machine). */
async function outcome(base, timeoutMs = 1_500) {
  let resp;
  try {
    resp = await fetch(`${base}${ROUTE}/validate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: README_KEY, organization_id: ORG }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    return { failed: 'before the head', timeout: e.name === 'TimeoutError' };
  }
  const length = resp.headers.get('content-length');
  try {
    // The length as sent, compared before the ids and times are masked: a timestamp whose
    // microseconds are zero is written without its fraction (pydantic's format), 7 bytes
    // shorter, so a declared length itself differs from one emulator's answer to the other's.
    const text = await resp.text();
    const body = normal(text);
    return { status: resp.status, length: Buffer.byteLength(text) === Number(length) ? 'as declared' : length, body: body.slice(0, 40) };
  } catch (e) {
    return { status: resp.status, failed: 'in the body', timeout: e.name === 'TimeoutError' };
  }
}

test('transport faults are delivered as the Rust emulator delivers them', { skip: NEEDS_CLI }, async () => {
  const polar = await startEmulator();
  const rust = await started(CLI, ['emulator', '--port', '0'], 1);
  const rustUrl = rust.url;
  try {
    for (const fault of [
      { kind: 'truncated' },
      { kind: 'huge', bytes: 100_000 },
      { kind: 'slow_body', ms_per_byte: 1 },
      { kind: 'delay', ms: 50 },
      { kind: 'close_immediately' },
      { kind: 'hang' },
      { kind: 'malformed' },
      { kind: 'rate_limited', retry_after: 7 },
      { kind: 'respond', status: 302, headers: [['location', 'https://login.example/']], body: 'go' },
    ]) {
      const got = [];
      for (const base of [polar.url, rustUrl]) {
        const resp = await fetch(`${base}/__emulator/fault`, { method: 'POST', body: JSON.stringify(fault) });
        assert.equal(resp.status, 204);
        got.push(await outcome(base, fault.kind === 'slow_body' ? 20_000 : 1_500));
        await fetch(`${base}/__emulator/fault`, { method: 'POST', body: 'null' });
      }
      assert.deepEqual(got[0], got[1], JSON.stringify(fault));
      if (fault.kind === 'hang') assert.deepEqual(got[0], { failed: 'before the head', timeout: true });
      if (fault.kind === 'huge') assert.deepEqual([got[0].status, got[0].length], [200, 'as declared']);
    }
    // Every fault body stream has ended.
    const streams = await fetch(`${polar.url}/__emulator/streams`).then((r) => r.json());
    assert.deepEqual(streams, { open: 0 });
  } finally {
    await stop(rust.child);
    await polar.close();
  }
});
