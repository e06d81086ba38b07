// Polar's webhooks from both emulators (the native `polar-license emulator` and the npm
// package's `polar-license/emulator`), checked by someone else's code: the official
// @polar-sh/sdk 1.0.1 registers the endpoints (`webhooks.*`) and verifies every delivery
// (`webhooks.validateEvent`: signature, timestamp, event type), and TypeScript checks each
// payload against the SDK's own `WebhookBenefitGrant…Payload` types. Then what the SDK does not
// see: the retry schedule and the per-attempt timeout of each host, and every injectable
// webhook fault (`setWebhookFault` in npm, `POST /__emulator/webhooks/fault` natively) with the
// cycle of a key (`cycleKey`, `POST /__emulator/keys/{key}/cycle`), checked with node:crypto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CLI, PACKAGE_DIR, ORG } from './emulator.mjs';

const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const VERSIONS = ['2026-04', '2026-10', '2027-01'];
const GRANT_EVENTS = [
  'benefit_grant.created',
  'benefit_grant.updated',
  'benefit_grant.revoked',
  'benefit_grant.cycled',
];
const SDK_DIR = fileURLToPath(new URL('../../scripts/npm/node_modules/polar-sdk-v1/', import.meta.url));
const TSC = fileURLToPath(new URL('../../scripts/npm/node_modules/typescript/bin/tsc', import.meta.url));
// The SDK verifies with globalThis.crypto.subtle, which node has by default from 19 on.
const NO_WEBCRYPTO = globalThis.crypto?.subtle === undefined;
const sdk = (version) => import(pathToFileURL(join(SDK_DIR, 'dist', version, 'index.mjs')).href);

/** A loopback receiver: records every request (`at`: performance.now() on arrival), answers
 * `status(n, delivery)` (a number, or a promise of one: a slow receiver). */
async function receiver(status = () => 204) {
  const got = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const n = got.length;
      const delivery = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: performance.now() };
      got.push(delivery);
      const code = await status(n, delivery);
      if (!res.destroyed) res.writeHead(code).end('ok');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/hooks/polar`;
  return {
    url,
    got,
    async waitFor(n, ms = 20_000) {
      const end = Date.now() + ms;
      while (got.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      assert.ok(got.length >= n, `${got.length} of ${n} deliveries arrived`);
      return got;
    },
    close: () => {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The tests' retry schedule scale: 512 s is 51 ms. */
const SCALE = 0.0001;

/** The native emulator (the command line), its retry schedule scaled down; `timeoutMs`: its
 * `--webhook-timeout`. `setWebhookFault` and `cycle` go through its admin routes. */
async function nativeEmulator({ timeoutMs } = {}) {
  const args = ['emulator', '--port', '0', '--webhook-time-scale', String(SCALE)];
  if (timeoutMs !== undefined) args.push('--webhook-timeout', String(timeoutMs / 1000));
  const child = spawn(CLI, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk;
      const m = /^listening on (\S+)/m.exec(text);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`emulator exited ${code}`)));
  });
  return {
    url,
    setWebhookFault: (fault) => admin(url, 'POST', '/webhooks/fault', fault),
    /** The key's usage after a new billing period of it (Polar keeps it), `false` for no such key. */
    async cycle(key) {
      const resp = await fetch(`${url}/__emulator/keys/${key}/cycle`, { method: 'POST' });
      if (resp.status === 404) return false;
      assert.equal(resp.status, 200, await resp.clone().text());
      return (await resp.json()).usage;
    },
    close: async () => {
      child.kill();
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** The npm package's emulator, in this process: its own `setWebhookFault` and `cycleKey`. */
async function npmEmulator({ timeoutMs } = {}) {
  const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);
  const options = { webhookTimeScale: SCALE };
  if (timeoutMs !== undefined) options.webhookTimeoutMs = timeoutMs;
  const polar = await startEmulator(options);
  return {
    url: polar.url,
    setWebhookFault: async (fault) => polar.setWebhookFault(fault),
    /** The key's usage after a new billing period of it (Polar keeps it), `false` for no such key. */
    async cycle(key) {
      const cycled = polar.cycleKey(key);
      assert.equal(typeof cycled, 'boolean');
      return cycled && polar.key(key).usage;
    },
    close: () => polar.close(),
  };
}

const EMULATORS = [
  ['native', nativeEmulator],
  ['npm', npmEmulator],
];

async function admin(url, method, path, body) {
  const resp = await fetch(`${url}/__emulator${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(resp.ok, `${method} ${path}: ${resp.status} ${await resp.clone().text()}`);
  return resp.status === 204 ? null : resp.json();
}

async function newKey(url) {
  const key = `HOOK-${Math.random().toString(16).slice(2, 10).toUpperCase()}-4A5B6C`;
  await admin(url, 'POST', '/keys', { key, limit_activations: 3 });
  return key;
}

/** tsc checks `payloads` (one per version) against the SDK's payload types of that version. */
async function typeCheck(payloads) {
  const dir = await mkdtemp(join(tmpdir(), 'polar-webhook-types-'));
  try {
    let source = '';
    payloads.forEach(({ version, payload }, i) => {
      const type = {
        'benefit_grant.created': 'WebhookBenefitGrantCreatedPayload',
        'benefit_grant.updated': 'WebhookBenefitGrantUpdatedPayload',
        'benefit_grant.revoked': 'WebhookBenefitGrantRevokedPayload',
        'benefit_grant.cycled': 'WebhookBenefitGrantCycledPayload',
      }[payload.type];
      assert.ok(type, payload.type);
      const from = join(SDK_DIR, 'dist', version, 'index.mjs');
      source += `import type { webhooks as w${i} } from ${JSON.stringify(from)};\n`;
      source += `export const p${i}: w${i}.${type} = ${JSON.stringify(payload)};\n`;
    });
    await writeFile(join(dir, 'check.mts'), source);
    await promisify(execFile)(
      process.execPath,
      [TSC, '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext',
        '--moduleResolution', 'nodenext', '--skipLibCheck', join(dir, 'check.mts')],
      { cwd: dir },
    ).catch((e) => assert.fail(`the SDK's types refuse a payload:\n${e.stdout}${e.stderr}`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Polar's waits after each failed try, in seconds, before its 50-100 % jitter (2 s doubling,
 * capped at 20 minutes): ten tries in all. */
const SCHEDULE = [2, 4, 8, 16, 32, 64, 128, 256, 512];

/** Each gap (ms) between tries is the schedule's wait, scaled, with Polar's jitter: never
 * shorter than half of it (but for a timer's millisecond), longer than all of it by at most
 * what an attempt and a loaded machine add. */
function assertSchedule(gaps) {
  assert.equal(gaps.length, SCHEDULE.length, String(gaps));
  gaps.forEach((gap, i) => {
    const full = SCHEDULE[i] * SCALE * 1000;
    const most = full * 1.25 + 250;
    assert.ok(
      gap >= full / 2 - 1.5 && gap <= most,
      `wait ${i + 1} is ${gap.toFixed(1)} ms, the schedule's ${full / 2} to ${full} ms (at most ${most}); all: ${gaps.map((g) => g.toFixed(1))}`,
    );
  });
}

/** Registers an endpoint for `events` with Polar's route (no SDK: node 18 runs this too). */
async function register(url, hookUrl, events) {
  const resp = await fetch(`${url}/v1/webhooks/endpoints`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: hookUrl, format: 'raw', events }),
  });
  assert.equal(resp.status, 201, await resp.clone().text());
  return resp.json();
}

/** The deliveries of an endpoint, newest first. */
async function deliveries(url, endpointId) {
  const resp = await fetch(`${url}/v1/webhooks/deliveries?endpoint_id=${endpointId}&limit=100`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(resp.status, 200, await resp.clone().text());
  return (await resp.json()).items;
}

/** A Standard Webhooks check with node:crypto: the signature under the base64 key after
 * `whsec_`, a timestamp within 300 s. */
function verify(secret, delivery) {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const id = delivery.headers['webhook-id'];
  const ts = delivery.headers['webhook-timestamp'];
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const mac = createHmac('sha256', key).update(`${id}.${ts}.${delivery.body}`).digest('base64');
  return delivery.headers['webhook-signature'].split(' ').includes(`v1,${mac}`);
}

const stamp = (delivery) => Date.parse(JSON.parse(delivery.body).timestamp);

for (const [face, start] of EMULATORS) {
  test(`${face}: an answer after the attempt's timeout is a failed attempt, and it is retried`, async (t) => {
    if (face === 'native' && !CLI) return t.skip('POLAR_CLI is not set');
    const polar = await start({ timeoutMs: 300 });
    // The first attempt is answered 204, but after 2 s; the retry at once.
    const hooks = await receiver(async (n) => {
      if (n === 0) await sleep(2000);
      return 204;
    });
    try {
      const endpoint = await register(polar.url, hooks.url, ['benefit_grant.created']);
      await newKey(polar.url);
      const [first] = await hooks.waitFor(1);
      // Given up at the timeout, while the receiver still holds its answer.
      let list = [];
      while (list.length === 0 && performance.now() < first.at + 1500) {
        await sleep(10);
        list = await deliveries(polar.url, endpoint.id);
      }
      assert.ok(performance.now() < first.at + 2000, 'recorded before the receiver answered');
      const oldest = list.at(-1);
      assert.equal(oldest.succeeded, false);
      assert.equal(oldest.http_code, null, JSON.stringify(oldest));
      assert.equal(typeof oldest.response, 'string', 'the error is kept');
      const got = await hooks.waitFor(2);
      assert.equal(got[1].headers['webhook-id'], first.headers['webhook-id']);
      assert.ok(verify(endpoint.secret, got[1]));
      for (let i = 0; i < 200 && list.length < 2; i++) {
        await sleep(10);
        list = await deliveries(polar.url, endpoint.id);
      }
      assert.deepEqual(
        list.map((d) => [d.succeeded, d.http_code]),
        [[true, 204], [false, null]],
      );
    } finally {
      await hooks.close();
      await polar.close();
    }
  });

  test(`${face}: every injectable webhook fault, and a key's new billing period`, async (t) => {
    if (face === 'native' && !CLI) return t.skip('POLAR_CLI is not set');
    const polar = await start();
    // The receiver accepts only what verifies, as a real one must: a faulted attempt fails
    // and is retried.
    let secret = '';
    const hooks = await receiver((_, d) => (verify(secret, d) ? 200 : 400));
    try {
      const endpoint = await register(polar.url, hooks.url, GRANT_EVENTS);
      secret = endpoint.secret;
      const key = await newKey(polar.url); // benefit_grant.created
      await hooks.waitFor(1);
      const bump = (usage) => admin(polar.url, 'PATCH', `/keys/${key}`, { usage });
      const id = (d) => d.headers['webhook-id'];

      // Duplicate: the same webhook-id and body twice, both valid.
      await polar.setWebhookFault({ kind: 'duplicate' });
      await bump(1);
      let got = await hooks.waitFor(3);
      assert.equal(id(got[1]), id(got[2]));
      assert.equal(got[1].body, got[2].body);
      assert.ok(verify(secret, got[1]) && verify(secret, got[2]));
      // A fault applies to one change, then clears itself.
      assert.equal(await admin(polar.url, 'GET', '/webhooks/fault'), null);

      // A wrong signature first, then the right one (the same id).
      await polar.setWebhookFault({ kind: 'bad_signature' });
      await bump(2);
      got = await hooks.waitFor(5);
      assert.equal(verify(secret, got[3]), false);
      assert.equal(id(got[4]), id(got[3]));
      assert.ok(verify(secret, got[4]), 'the retry is signed right');

      // A stale timestamp (signed right for it), then a fresh one.
      await polar.setWebhookFault({ kind: 'stale_timestamp', seconds: 600 });
      await bump(3);
      got = await hooks.waitFor(7);
      const stale = Number(got[5].headers['webhook-timestamp']);
      assert.ok(Date.now() / 1000 - stale >= 599, `${stale}`);
      assert.equal(verify(secret, got[5]), false);
      assert.equal(id(got[6]), id(got[5]));
      assert.ok(verify(secret, got[6]), 'fresh');

      // Two events out of order: the later change's event arrives first.
      await polar.setWebhookFault({ kind: 'reorder' });
      await bump(4);
      await sleep(150);
      assert.equal(hooks.got.length, 7, 'held until the next event');
      await bump(5);
      got = await hooks.waitFor(9);
      assert.ok(stamp(got[7]) > stamp(got[8]), 'the later change first');
      assert.ok(verify(secret, got[7]) && verify(secret, got[8]));

      // Delayed.
      await polar.setWebhookFault({ kind: 'delay', ms: 400 });
      const before = performance.now();
      await bump(6);
      got = await hooks.waitFor(10);
      assert.ok(got[9].at - before >= 390, `${got[9].at - before} ms`);

      // A new billing period: benefit_grant.cycled, the usage kept (Polar does not reset it,
      // §16.6); an unknown key: false.
      assert.equal(await polar.cycle(key), 6);
      got = await hooks.waitFor(11);
      assert.equal(JSON.parse(got[10].body).type, 'benefit_grant.cycled');
      assert.ok(verify(secret, got[10]));
      assert.equal(await polar.cycle('NO-SUCH-KEY'), false);
      await sleep(100);
      assert.equal(hooks.got.length, 11, 'nothing more');
    } finally {
      await hooks.close();
      await polar.close();
    }
  });
}

for (const [face, start] of EMULATORS) {
  test(`${face}: the SDK registers an endpoint per API version; a new key, a limit change, a new period and a revocation arrive as benefit_grant.created, .updated, .cycled and .revoked that validateEvent accepts and the SDK's types allow`, async (t) => {
    if (face === 'native' && !CLI) return t.skip('POLAR_CLI is not set');
    if (NO_WEBCRYPTO) return t.skip(`node ${process.version} has no global WebCrypto, which the SDK needs`);
    const polar = await start();
    const hooks = await receiver();
    try {
      const secrets = {};
      for (const version of VERSIONS) {
        const { createPolar } = await sdk(version);
        const client = createPolar({ accessToken: TOKEN, baseUrl: polar.url });
        const endpoint = await client.webhooks.createWebhookEndpoint({
          url: hooks.url,
          format: 'raw',
          events: GRANT_EVENTS,
        });
        assert.equal(endpoint.api_version, version);
        assert.equal(endpoint.enabled, true);
        assert.equal(endpoint.organization_id, ORG);
        assert.match(endpoint.secret, /^whsec_/);
        secrets[version] = endpoint.secret;
      }
      const key = await newKey(polar.url); // benefit_grant.created, one per endpoint
      await hooks.waitFor(3);
      await admin(polar.url, 'PATCH', `/keys/${key}`, { limit_activations: 5 }); // .updated
      await hooks.waitFor(6);
      assert.equal(await polar.cycle(key), 0); // .cycled (the key's usage, kept)
      await hooks.waitFor(9);
      await admin(polar.url, 'PATCH', `/keys/${key}`, { status: 'revoked' });
      const got = await hooks.waitFor(12);
      const checked = [];
      for (const delivery of got) {
        const version = JSON.parse(delivery.body).api_version;
        const { webhooks } = await sdk(version);
        const event = await webhooks.validateEvent(delivery.body, delivery.headers, secrets[version]);
        checked.push({ version, payload: event });
        // Another endpoint's secret does not validate it.
        const other = VERSIONS.find((v) => v !== version);
        await assert.rejects(webhooks.validateEvent(delivery.body, delivery.headers, secrets[other]));
      }
      // Each event once per API version, in the order of the changes.
      const of = (type) => checked.filter((c) => c.payload.type === type);
      for (const type of GRANT_EVENTS) {
        assert.deepEqual(of(type).map((c) => c.version).sort(), VERSIONS, type);
      }
      for (const version of VERSIONS) {
        const types = checked.filter((c) => c.version === version).map((c) => c.payload.type);
        assert.deepEqual(
          types,
          ['benefit_grant.created', 'benefit_grant.updated', 'benefit_grant.cycled', 'benefit_grant.revoked'],
          version,
        );
      }
      const display = `****-${key.slice(-6)}`;
      for (const { payload } of of('benefit_grant.revoked')) {
        assert.equal(payload.data.is_revoked, true);
        assert.equal(payload.data.properties.display_key, display);
        assert.equal(payload.data.benefit.type, 'license_keys');
      }
      // The limit change is the key's, not its benefit's: the grant's `benefit` keeps the
      // benefit's own properties (Polar's `BenefitGrant.benefit`, `benefit/schemas.py`; issue
      // #78), here the limit the key was made with; the properties before the change.
      for (const { payload } of of('benefit_grant.updated')) {
        assert.equal(payload.data.is_granted, true);
        assert.equal(payload.data.benefit.properties.activations.limit, 3);
        assert.equal(payload.data.previous_properties.display_key, display);
        assert.equal(payload.data.previous_properties.license_key_id, payload.data.properties.license_key_id);
      }
      for (const { payload } of of('benefit_grant.cycled')) {
        assert.equal(payload.data.is_granted, true);
        assert.equal(payload.data.properties.display_key, display);
        assert.equal(payload.data.previous_properties, undefined);
      }
      // A tampered body or a stale timestamp is refused by the SDK.
      const { webhooks } = await sdk('2026-10');
      const one = got.find((d) => {
        const p = JSON.parse(d.body);
        return p.api_version === '2026-10' && p.type === 'benefit_grant.revoked';
      });
      const tampered = one.body.replace('"is_revoked":true', '"is_revoked":false');
      assert.notEqual(tampered, one.body);
      await assert.rejects(webhooks.validateEvent(tampered, one.headers, secrets['2026-10']));
      const stale = { ...one.headers, 'webhook-timestamp': String(Math.floor(Date.now() / 1000) - 301) };
      await assert.rejects(webhooks.validateEvent(one.body, stale, secrets['2026-10']));
      await typeCheck(checked);
    } finally {
      await hooks.close();
      await polar.close();
    }
  });

  test(`${face}: a failing receiver sees ten tries of each event; ten such events disable the endpoint; the SDK lists the deliveries and redelivers`, async (t) => {
    if (face === 'native' && !CLI) return t.skip('POLAR_CLI is not set');
    if (NO_WEBCRYPTO) return t.skip(`node ${process.version} has no global WebCrypto, which the SDK needs`);
    const polar = await start();
    const hooks = await receiver(() => 503);
    try {
      const { createPolar } = await sdk('2026-10');
      const client = createPolar({ accessToken: TOKEN, baseUrl: polar.url });
      const endpoint = await client.webhooks.createWebhookEndpoint({
        url: hooks.url,
        format: 'raw',
        events: ['benefit_grant.revoked'],
      });
      const listed = await client.webhooks.listWebhookEndpoints({});
      assert.ok(listed.items.some((e) => e.id === endpoint.id));
      const keys = [];
      for (let i = 0; i < 10; i++) keys.push(await newKey(polar.url));
      await admin(polar.url, 'PATCH', `/keys/${keys[0]}`, { status: 'revoked' });
      const got = await hooks.waitFor(10);
      assert.equal(new Set(got.map((d) => d.headers['webhook-id'])).size, 1, 'one event, ten tries');
      assertSchedule(got.slice(1).map((d, i) => d.at - got[i].at));
      // One event that failed every try disables nothing; nine more (each in its turn) do.
      for (const key of keys.slice(1)) await admin(polar.url, 'PATCH', `/keys/${key}`, { status: 'revoked' });
      await hooks.waitFor(91);
      // The tenth event's first try goes out only once the ninth's last is done: nine failed
      // events so far, and the endpoint is still enabled.
      assert.equal((await client.webhooks.getWebhookEndpoint(endpoint.id)).enabled, true);
      const all = await hooks.waitFor(100);
      assert.equal(new Set(all.map((d) => d.headers['webhook-id'])).size, 10, 'ten events, ten tries each');
      let state = endpoint;
      for (let i = 0; i < 200 && state.enabled; i++) {
        await new Promise((r) => setTimeout(r, 20));
        state = await client.webhooks.getWebhookEndpoint(endpoint.id);
      }
      assert.equal(state.enabled, false);
      const deliveries = await client.webhooks.listWebhookDeliveries({ endpoint_id: endpoint.id, limit: 100 });
      assert.equal(deliveries.items.length, 100);
      assert.ok(deliveries.items.every((d) => d.succeeded === false && d.http_code === 503));
      const eventId = deliveries.items[99].webhook_event.id;
      assert.equal(eventId, got[0].headers['webhook-id'], 'oldest last');
      // Enabled again and redelivered: the same webhook-id.
      const enabled = await client.webhooks.updateWebhookEndpoint(endpoint.id, { enabled: true });
      assert.equal(enabled.enabled, true);
      await client.webhooks.redeliverWebhookEvent(eventId);
      const again = await hooks.waitFor(101);
      assert.equal(again[100].headers['webhook-id'], eventId);
      const reset = await client.webhooks.resetWebhookEndpointSecret(endpoint.id);
      assert.match(reset.secret, /^whsec_/);
      assert.notEqual(reset.secret, endpoint.secret);
      await client.webhooks.deleteWebhookEndpoint(endpoint.id);
      await assert.rejects(client.webhooks.getWebhookEndpoint(endpoint.id), (e) => e.name === 'ResourceNotFound' || /404|not found/i.test(String(e)));
    } finally {
      await hooks.close();
      await polar.close();
    }
  });
}
