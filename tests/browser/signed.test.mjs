// Signed mode (issue #25) in each browser engine (tests/browser/engines.mjs: Chromium, Firefox
// ESR, WebKitGTK): the installed tarball's browser entry on a page, through a stand-in relay on another origin (tests/js/lease-relay.mjs) that signs
// leases. With the lease header exposed to the page (CORS `Access-Control-Expose-Headers`)
// the activation stores a lease that verifies; a relay that does not expose it is, to the
// page, a grant without a lease: `protocol_error`, nothing stored (what the README says).
// Issue #38: the lease's signature is verified by the browser's WebCrypto Ed25519; a page without
// relay keys fetches no verifier, and where WebCrypto has no Ed25519 (taken away here) the
// package's wasm add-on is fetched on the first lease (the page's resource timing says which).
// A relay's replayed answer (`Age`, exposed to the page) is dated from when Polar gave it; not
// exposed, the page cannot read it and dates it from its arrival.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eachEngine } from './engines.mjs';
import { newKey as newEmulatorKey, serve, statusMatching } from './support.mjs';
import { honest, signingKey, standIn } from '../js/lease-relay.mjs';

const { POLAR_EMULATOR_URL: EMULATOR, CONSUMER, TOOLS } = process.env;
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
if (!EMULATOR || !CONSUMER || !TOOLS) throw new Error('run scripts/test-wasm.sh');

const SIGNER = signingKey('relay-2026');
const PAGE = `<!doctype html>
<meta charset="utf-8">
<p id="status">checking…</p>
<script type="module">
  import { LicenseClient } from './node_modules/polar-license/browser.js';

  const q = new URLSearchParams(location.search);
  if (q.get('noEd25519')) {
    const real = crypto.subtle.importKey.bind(crypto.subtle);
    crypto.subtle.importKey = (...a) =>
      a[2]?.name === 'Ed25519' ? Promise.reject(new DOMException('Unrecognized name.', 'NotSupportedError')) : real(...a);
  }
  const relayKey = q.get('relayKey');
  const client = new LicenseClient({
    organizationId: q.get('org'),
    baseUrl: q.get('api'),
    storage: 'memory',
    machineId: 'browser-machine',
    ...(relayKey ? { relayKeys: [relayKey] } : {}),
  });
  const key = q.get('key');
  const status = document.querySelector('#status');
  const addon = () =>
    performance.getEntriesByType('resource').some((e) => e.name.includes('polar_license_ed25519')) ? 'add-on fetched' : 'no add-on';
  try {
    if (q.get('age')) {
      // A check answered by a relay's replay of an answer given \`age\` seconds ago.
      const c = await client.check(key);
      status.textContent = \`check \${c.source}; verified \${Math.round(Date.now() / 1000) - c.verifiedAt} s ago; grace \${c.graceEndsAt - c.verifiedAt}\`;
    } else {
      const a = await client.activate(key, { label: 'browser' });
      const c = await client.check(key);
      const s = await client.status(key);
      status.textContent = relayKey
        ? \`activated \${a.lease.kid} \${a.lease.expiresAt}; check \${c.source} \${c.lease.expiresAt}; status \${s.lease.expiresAt}; \${addon()}\`
        : \`activated, no lease \${a.lease}; check \${c.source}; \${addon()}\`;
    }
  } catch (err) {
    status.textContent = \`\${err.code}: \${err.detail.split(';')[0]}; stored \${(await client.status(key)).state}; \${addon()}\`;
  }
</script>
`;

let site;
const relay = { requests: 0, down: false, lease: honest(SIGNER), now: () => Math.floor(Date.now() / 1000) };

before(async () => {
  await writeFile(join(CONSUMER, 'signed-mode.html'), PAGE);
  site = await serve(CONSUMER);
  await standIn(relay, EMULATOR);
});

after(async () => {
  site?.server.close();
  await relay.close?.();
});

eachEngine(TOOLS, (engine, browser) => {
  const problems = [];

  async function show(key, more = {}) {
    const query = new URLSearchParams({ api: relay.url, org: ORG, key, relayKey: SIGNER.pair, ...more });
    const page = await browser.open(`${site.url}/signed-mode.html?${query}`);
    try {
      return await statusMatching(page, '^(?!checking…)');
    } catch (e) {
      // What the page logged says why it never finished; and the page is closed all the
      // same, so one stuck page does not take the engine's one session from the next test.
      e.message += `\n${page.problems.join('\n')}`;
      throw e;
    } finally {
      problems.push(...page.problems);
      await page.close();
    }
  }

  test('a page in signed mode stores the lease the relay exposes to it', async () => {
    relay.hideLease = false;
    const text = await show(await newEmulatorKey(EMULATOR, 'SIGNED', { limit_activations: 3 }));
    const m = /^activated relay-2026 (\d+); check cache (\d+); status (\d+); no add-on$/.exec(text);
    assert.ok(m, `${text}\n${problems.join('\n')}`);
    assert.equal(m[2], m[1]);
    assert.equal(m[3], m[1]);
    assert.ok(Math.abs(Number(m[1]) - (relay.now() + 3 * 86400)) < 120, text);
  });

  test('a relay that does not expose the lease header to the page gives it no grant', async () => {
    relay.hideLease = true;
    const text = await show(await newEmulatorKey(EMULATOR, 'SIGNED', { limit_activations: 3 }));
    assert.equal(text, 'protocol_error: signed mode: the grant came without a lease that verifies (missing); stored empty; no add-on', problems.join('\n'));
  });

  test('a page without relay keys fetches no signature verifier', async () => {
    relay.hideLease = false;
    const text = await show(await newEmulatorKey(EMULATOR, 'SIGNED', { limit_activations: 3 }), { relayKey: '' });
    assert.equal(text, 'activated, no lease null; check cache; no add-on', problems.join('\n'));
  });

  test("a page dates a relay's replayed answer by its Age, when the relay exposes it", async () => {
    relay.hideLease = false;
    relay.age = 3600;
    try {
      const key = await newEmulatorKey(EMULATOR, 'AGED', { limit_activations: 3 });
      const aged = await show(key, { relayKey: '', age: '1' });
      const m = /^check online; verified (\d+) s ago; grace 604800$/.exec(aged);
      assert.ok(m && Math.abs(Number(m[1]) - 3600) <= 2, `${aged}\n${problems.join('\n')}`);
      // Not exposed, the page cannot read it: the answer is dated from its arrival.
      relay.hideAge = true;
      const hidden = await show(await newEmulatorKey(EMULATOR, 'AGED', { limit_activations: 3 }), { relayKey: '', age: '1' });
      const h = /^check online; verified (\d+) s ago; grace 604800$/.exec(hidden);
      assert.ok(h && Number(h[1]) <= 2, `${hidden}\n${problems.join('\n')}`);
    } finally {
      relay.age = undefined;
      relay.hideAge = false;
    }
  });

  test("where WebCrypto has no Ed25519 the wasm add-on is fetched on the first lease and verifies it", async () => {
    relay.hideLease = false;
    const text = await show(await newEmulatorKey(EMULATOR, 'SIGNED', { limit_activations: 3 }), { noEd25519: '1' });
    const m = /^activated relay-2026 (\d+); check cache (\d+); status (\d+); add-on fetched$/.exec(text);
    assert.ok(m, `${text}\n${problems.join('\n')}`);
    assert.equal(m[2], m[1]);
    // A forger's lease under the trusted kid: refused by the add-on as by WebCrypto.
    relay.lease = honest(signingKey('relay-2026'));
    try {
      const forged = await show(await newEmulatorKey(EMULATOR, 'SIGNED', { limit_activations: 3 }), { noEd25519: '1' });
      assert.equal(forged, 'protocol_error: signed mode: the grant came without a lease that verifies (signature); stored empty; add-on fetched', problems.join('\n'));
    } finally {
      relay.lease = honest(SIGNER);
    }
  });
});
