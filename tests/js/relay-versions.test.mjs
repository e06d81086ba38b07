// Issue #78 on the npm package's relay (`polar-license/relay`, the core Workers runs, driven here
// from node): Polar sends each webhook endpoint's payloads in the endpoint's API version (the
// payload's `api_version`), and the relay reads every supported one, counts the version each
// verified delivery came with (`/healthz`'s `webhooks.payload_versions`, `last_payload_version`)
// and warns while it is one Polar removes at its next release (`version_warning`, `status`
// `warning`). The count is the Rust core's (crates/relay/src/payload_versions.rs), on every host:
// played here by the handler in node and by the Workers runtime (the `workerd` npm package,
// offline), with its Durable Object store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, DEAD, ORG, README_KEY, REVOKED_KEY, importAsApp, relaySigningKey, served } from './emulator.mjs';
import { WORKERD, freePort, relayUnderWorkerd, storeWorker } from './workerd.mjs';

const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const relayPkg = await importAsApp('relay-versions-import.mjs', 'polar-license/relay');
const SIGNING_KEY = relaySigningKey('versions-js').text;

/** A delivery signed as Polar signs it (Standard Webhooks, the base64 secret). */
function signedHeaders(id, body, ts = Math.floor(Date.now() / 1000)) {
  const key = Buffer.from(SECRET.slice('whsec_'.length), 'base64');
  const sig = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
  return { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${sig}` };
}

/** A request straight to the handler (no server): `{status, body}`. */
async function direct(relay, path, { method = 'POST', headers = {}, body } = {}) {
  const r = await relay.fetch(new Request(`http://relay.test${path}`, { method, headers, body }), undefined, { clientIp: '127.0.0.1' });
  return { status: r.status, body: await r.text() };
}

/** The deliveries of each host's scenario: a payload version (none: `undefined`), and whether
 * the relay warns after it. */
const DELIVERIES = [['2026-04', true], ['2026-10', false], ['2027-01', false], ['2026-04', true], [undefined, false]];

/** Posts each of DELIVERIES, signed, with `post(path, init)`, reading `/healthz` after each. */
async function scenario(post) {
  const health = async () => JSON.parse((await post('/healthz', { method: 'GET' })).body);
  let n = 0;
  for (const [version, warned] of DELIVERIES) {
    n += 1;
    const body = JSON.stringify({
      type: 'benefit_grant.updated',
      timestamp: new Date().toISOString(),
      ...(version ? { api_version: version } : {}),
      data: { id: `grant-${n}`, customer_id: 'c', benefit_id: 'b', properties: {} },
    });
    const r = await post('/v1/webhooks/polar', { method: 'POST', headers: signedHeaders(`evt-${n}`, body), body });
    assert.equal(r.status, 200, r.body);
    const h = await health();
    assert.equal(h.webhooks.last_payload_version, version ?? 'unstated', JSON.stringify(h));
    assert.equal(h.webhooks.version_warning !== null, warned, JSON.stringify(h));
    assert.equal(h.status === 'warning', warned, JSON.stringify(h));
  }
  const h = await health();
  assert.deepEqual(h.webhooks.payload_versions, { '2026-04': 2, '2026-10': 1, '2027-01': 1, unstated: 1 });
}

test('node: every supported payload version is read and counted; one due for removal warns until the endpoint moves', async () => {
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: SIGNING_KEY, baseUrl: DEAD, store: { webhookSecret: SECRET } });
  await scenario((path, init) => direct(relay, path, init));
});

test('workerd: the same, counted by the Workers host', { skip: existsSync(WORKERD) ? false : 'no workerd (scripts/npm)' }, async () => {
  const storeDir = await mkdtemp(join(tmpdir(), 'polar-license-versions-'));
  const port = await freePort();
  const host = await relayUnderWorkerd({
    port,
    worker: storeWorker(`store: { webhookSecret: env.POLAR_WEBHOOK_SECRET },`),
    polarUrl: DEAD,
    bindings: { POLAR_ACCESS_TOKEN: TOKEN, RELAY_SIGNING_KEY: SIGNING_KEY, POLAR_WEBHOOK_SECRET: SECRET },
    store: { dir: storeDir, uniqueKey: 'polar-relay-versions-test' },
    probe: '/healthz',
  });
  try {
    await scenario(async (path, init) => {
      const r = await fetch(`${host.url}${path}`, init);
      return { status: r.status, body: await r.text() };
    });
  } finally {
    await host.close();
    await rm(storeDir, { recursive: true, force: true });
  }
});

/** An emulator process of this file's own (the rotation changes its versions): its URL and stop. */
async function ownEmulator() {
  const polar = await served(['emulator', '--port', '0'], { ready: null });
  return { url: polar.url, stop: polar.close };
}

// The January rotation through the Workers host (issue #78): the relay's validates (its
// verdicts, stored and forwarded) read the same before and after Polar removes 2026-04 and
// makes 2027-01 current, and every request the relay made named it and pinned no version.
test('workerd: the relay keeps its verdicts through the rotation day, naming itself and pinning no version', { skip: existsSync(WORKERD) && CLI ? false : 'needs workerd (scripts/npm) and POLAR_CLI' }, async () => {
  const polar = await ownEmulator();
  const storeDir = await mkdtemp(join(tmpdir(), 'polar-license-rotation-'));
  const port = await freePort();
  let host;
  try {
    host = await relayUnderWorkerd({
      port,
      worker: storeWorker(`store: { webhookSecret: env.POLAR_WEBHOOK_SECRET },`),
      polarUrl: polar.url,
      bindings: { POLAR_ACCESS_TOKEN: TOKEN, RELAY_SIGNING_KEY: SIGNING_KEY, POLAR_WEBHOOK_SECRET: SECRET },
      store: { dir: storeDir, uniqueKey: 'polar-relay-rotation-test' },
      probe: '/healthz',
    });
    const validate = async (key) => {
      const r = await fetch(`${host.url}/v1/customer-portal/license-keys/validate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key, organization_id: ORG }),
      });
      const text = await r.text();
      let status = null;
      try {
        status = JSON.parse(text).status ?? null;
      } catch {}
      return [r.status, status];
    };
    const verdicts = async () => [await validate(README_KEY), await validate(REVOKED_KEY)];
    const control = async (method, path, body) => {
      const r = await fetch(`${polar.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
      return [r.status, r.status === 204 ? null : await r.json()];
    };
    const before = await verdicts();
    assert.deepEqual(before[0], [200, 'granted'], JSON.stringify(before));
    assert.notEqual(before[1][0], 200, JSON.stringify(before));
    const [switched] = await control('POST', '/__emulator/api-versions', { served: ['2026-10', '2027-01'], current: '2027-01' });
    assert.equal(switched, 200);
    assert.deepEqual(await verdicts(), before);
    const [, seen] = await control('GET', '/__emulator/requests/seen');
    assert.ok(seen.length >= 2, JSON.stringify(seen));
    for (const r of seen) {
      assert.equal(r.polar_version ?? null, null, JSON.stringify(r));
      assert.match(r.user_agent ?? '', /^polar-license-relay\//, JSON.stringify(r));
    }
  } finally {
    await host?.close();
    polar.stop();
    await rm(storeDir, { recursive: true, force: true });
  }
});
