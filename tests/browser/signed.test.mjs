// Signed mode (issue #25) in each browser engine (tests/browser/engines.mjs: Chromium, Firefox
// ESR, WebKitGTK): the installed tarball's browser entry on a page, through a stand-in relay on another origin (tests/js/lease-relay.mjs) that signs
// leases. With the lease header exposed to the page (CORS `Access-Control-Expose-Headers`)
// the activation stores a lease that verifies; a relay that does not expose it is, to the
// page, a grant without a lease: `protocol_error`, nothing stored (what the README says).
// Issue #38: the lease's signature is verified by the browser's WebCrypto Ed25519; a page without
// relay keys fetches no verifier, and where WebCrypto has no Ed25519 (taken away here) the
// package's wasm add-on is fetched on the first lease (the page's resource timing says which).
// A relay's replayed answer (`Age`, exposed to the page) is dated from when Polar gave it; not
// exposed, the page cannot read it and dates it from its arrival. Issue #53: the relay's earlier
// 200 replayed by the recording proxy after a denial and after a clock set back is refused as
// `replayed`, the denial and `clock_rollback` kept.
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

// Issue #53's replay, in a page: one client in signed mode over the page's memory, every check
// asking (revalidateAfter 0), its clock moved by \`window.replay.offset\` seconds; the stand-in
// relay records its last leased 200 of a validate and replays it with \`relay.replay\`.
const REPLAY_PAGE = `<!doctype html>
<meta charset="utf-8">
<body>
<script type="module">
  import { LicenseClient } from './node_modules/polar-license/browser.js';
  let offset = 0;
  let client;
  const settle = (p) =>
    p.then(
      (r) => ({ licensed: true, source: r.source }),
      (e) => ({ licensed: false, code: e.code, detail: e.detail }),
    );
  window.replay = {
    open(org, api, relayKey) {
      client = new LicenseClient({
        organizationId: org,
        baseUrl: api,
        storage: 'memory',
        machineId: 'browser-machine',
        relayKeys: [relayKey],
        gracePolicy: { revalidateAfter: 0 },
        clock: () => Date.now() + offset * 1000,
      });
    },
    activate: (key) => settle(client.activate(key, { label: 'browser' })),
    check(key, seconds) {
      offset = seconds;
      return settle(client.check(key));
    },
    async standing(key) {
      return (await client.status(key)).standing;
    },
  };
  document.body.dataset.ready = '1';
</script>
`;

let site;
const relay = { requests: 0, down: false, lease: honest(SIGNER), now: () => Math.floor(Date.now() / 1000) };

before(async () => {
  await writeFile(join(CONSUMER, 'signed-mode.html'), PAGE);
  await writeFile(join(CONSUMER, 'signed-replay.html'), REPLAY_PAGE);
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
  // Issue #53: the key revoked and denied online, the recording proxy replays the relay's earlier
  // 200 with its genuine lease: refused as \`replayed\` (another request's nonce), the denial kept;
  // and after the clock set ahead and back, the replay is refused and \`clock_rollback\` stays.
  // A fresh grant with its own nonce licenses online.
  test("a replayed relay grant undoes neither a denial nor a clock set back in a page (issue #53)", async () => {
    relay.hideLease = false;
    const DAY = 86400;
    const page = await browser.open(`${site.url}/signed-replay.html`);
    const on = (fn, arg) => page.evaluate(fn, arg);
    const check = (key, at) => on(([k, t]) => window.replay.check(k, t), [key, at]);
    try {
      await page.waitFor(() => document.body?.dataset.ready);
      await on(([org, api, k]) => window.replay.open(org, api, k), [ORG, relay.url, SIGNER.pair]);
      const said = () => page.problems.join('\n');
      const key = await newEmulatorKey(EMULATOR, 'REPLAY', { limit_activations: 3 });
      assert.equal((await on((k) => window.replay.activate(k), key)).licensed, true, said());
      assert.equal((await check(key, 0)).source, 'online', said());
      assert.ok(relay.tape, 'a leased 200 recorded');

      // The clock 30 days ahead and back 28, the relay unreachable: clock_rollback; the replay is
      // refused and the rollback stays; a fresh grant licenses online.
      relay.down = true;
      assert.equal((await check(key, 30 * DAY)).licensed, false);
      assert.equal((await check(key, 2 * DAY)).code, 'clock_rollback');
      relay.down = false;
      relay.replay = true;
      const before = relay.requests;
      const replayed = await check(key, 2 * DAY);
      relay.replay = false;
      assert.deepEqual({ licensed: replayed.licensed, code: replayed.code }, { licensed: false, code: 'replayed' }, JSON.stringify(replayed));
      assert.equal(relay.requests, before, 'the proxy answered alone');
      relay.down = true;
      assert.equal((await check(key, 2 * DAY + 60)).code, 'clock_rollback');
      relay.down = false;
      assert.equal((await check(key, 2 * DAY + 120)).source, 'online', said());

      // Revoked and denied online: the replay is refused and the denial kept.
      const revoked = await fetch(`${EMULATOR}/__emulator/keys/${key}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ status: 'revoked' }),
      });
      assert.equal(revoked.status, 200);
      assert.equal((await check(key, 2 * DAY + 180)).code, 'inactive');
      relay.replay = true;
      const again = await check(key, 2 * DAY + 240);
      relay.replay = false;
      assert.equal(again.code, 'replayed', JSON.stringify(again));
      relay.down = true;
      assert.equal((await check(key, 2 * DAY + 3600)).licensed, false);
      assert.equal(await on((k) => window.replay.standing(k), key), 'denied');
    } finally {
      relay.replay = false;
      relay.down = false;
      await page.close();
    }
  });
});
