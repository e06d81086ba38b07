// Polar's webhooks from both emulators (the native `polar-license emulator` and the npm
// package's `polar-license/emulator`), checked by someone else's code: the official
// @polar-sh/sdk 1.0.1 registers the endpoints (`webhooks.*`) and verifies every delivery
// (`webhooks.validateEvent`: signature, timestamp, event type), and TypeScript checks each
// payload against the SDK's own `WebhookBenefitGrant…Payload` types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
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

/** A loopback receiver: records every request, answers `status(n)`. */
async function receiver(status = () => 204) {
  const got = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const n = got.length;
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      res.writeHead(status(n)).end('ok');
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
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The native emulator (the command line), its retry schedule scaled down. */
async function nativeEmulator() {
  const child = spawn(CLI, ['emulator', '--port', '0', '--webhook-time-scale', '0.0001'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
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
    close: async () => {
      child.kill();
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** The npm package's emulator, in this process. */
async function npmEmulator() {
  const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);
  const polar = await startEmulator({ webhookTimeScale: 0.0001 });
  return { url: polar.url, close: () => polar.close() };
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

for (const [face, start] of EMULATORS) {
  test(`${face}: the SDK registers an endpoint per API version; a revocation arrives as benefit_grant.revoked that validateEvent accepts and the SDK's types allow`, async (t) => {
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
      await admin(polar.url, 'PATCH', `/keys/${key}`, { status: 'revoked' });
      const got = await hooks.waitFor(6);
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
      const revoked = checked.filter((c) => c.payload.type === 'benefit_grant.revoked');
      assert.deepEqual(revoked.map((c) => c.version).sort(), VERSIONS);
      for (const { payload } of revoked) {
        assert.equal(payload.data.is_revoked, true);
        assert.equal(payload.data.properties.display_key, `****-${key.slice(-6)}`);
        assert.equal(payload.data.benefit.type, 'license_keys');
      }
      assert.equal(checked.filter((c) => c.payload.type === 'benefit_grant.created').length, 3);
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

  test(`${face}: a failing receiver sees ten attempts, then the endpoint is disabled; the SDK lists the deliveries and redelivers`, async (t) => {
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
      const key = await newKey(polar.url);
      await admin(polar.url, 'PATCH', `/keys/${key}`, { status: 'revoked' });
      const got = await hooks.waitFor(10);
      assert.equal(new Set(got.map((d) => d.headers['webhook-id'])).size, 1, 'one event, ten attempts');
      let state = endpoint;
      for (let i = 0; i < 200 && state.enabled; i++) {
        await new Promise((r) => setTimeout(r, 20));
        state = await client.webhooks.getWebhookEndpoint(endpoint.id);
      }
      assert.equal(state.enabled, false);
      const deliveries = await client.webhooks.listWebhookDeliveries({ endpoint_id: endpoint.id, limit: 100 });
      assert.equal(deliveries.items.length, 10);
      assert.ok(deliveries.items.every((d) => d.succeeded === false && d.http_code === 503));
      const eventId = deliveries.items[0].webhook_event.id;
      assert.equal(eventId, got[0].headers['webhook-id']);
      // Enabled again and redelivered: the same webhook-id.
      const enabled = await client.webhooks.updateWebhookEndpoint(endpoint.id, { enabled: true });
      assert.equal(enabled.enabled, true);
      await client.webhooks.redeliverWebhookEvent(eventId);
      const again = await hooks.waitFor(11);
      assert.equal(again[10].headers['webhook-id'], eventId);
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
