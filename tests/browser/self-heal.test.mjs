// Self-healing activations (issue #80) in the browser: the installed tarball's browser entry on a
// page, against the emulator, with the seller's relay (`polar-license/relay` in node, in front of
// the emulator, on a third origin: its CORS grant lets the page read its answers). A reinstall on
// the same machine (the page's `machineId`, a fresh memory storage) at the activation limit ends
// licensed with the activation the machine already holds, found through the relay, and the
// emulator's count of the key's activations is unchanged. The engine's heal is the same machine in
// every engine (no storage or crypto of the browser's own): Chromium alone by default.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eachEngine } from './engines.mjs';
import { freshFolder, modulePage, newKey, serve } from './support.mjs';
import { nodeRelay } from '../js/emulator.mjs';

const { POLAR_EMULATOR_URL: EMULATOR, CONSUMER, TOOLS } = process.env;
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
if (!EMULATOR || !CONSUMER || !TOOLS) throw new Error('run scripts/test-wasm.sh');

const PAGE = `import { LicenseClient } from '../node_modules/polar-license/browser.js';
window.heal = {
  /** An install on machine \`machineId\`: a fresh storage, the relay named. */
  async activate(org, api, relay, machineId, key, label) {
    const client = new LicenseClient({ organizationId: org, baseUrl: api, storage: 'memory', machineId, relay });
    try {
      const a = await client.activate(key, { label });
      const c = await client.check(key);
      return { id: a.activation.id, checked: c.activation.id };
    } catch (e) {
      return { code: e.code, detail: e.detail };
    }
  },
};
document.body.dataset.ready = '1';
`;

let site;
let relay;

before(async () => {
  await freshFolder(CONSUMER, 'self-heal', { 'heal.js': PAGE, 'index.html': modulePage('./heal.js') });
  site = await serve(CONSUMER);
  relay = await nodeRelay(EMULATOR, 'heal-browser', { perKey: '1000/1000', corsOrigins: [site.url] });
});

after(() => {
  site?.server.close();
  relay?.close();
});

async function activations(key) {
  const resp = await fetch(`${EMULATOR}/__emulator/keys/${key}/activations`);
  assert.equal(resp.status, 200);
  return (await resp.json()).length;
}

eachEngine(
  TOOLS,
  (engine, browser) => {
    test(`${engine}: a reinstall at the activation limit adopts its own activation through the relay, none taken`, async () => {
      const key = await newKey(EMULATOR, 'HEAL', { limit_activations: 1 });
      const page = await browser.open(`${site.url}/self-heal/index.html`);
      try {
        await page.waitFor(() => document.body?.dataset.ready);
        const install = (machine, label) =>
          page.evaluate(([org, api, relay, m, k, l]) => window.heal.activate(org, api, relay, m, k, l), [ORG, EMULATOR, relay.url, machine, key, label]);
        const first = await install('browser-machine-A', 'This browser');
        assert.ok(first.id, JSON.stringify(first));
        assert.equal(await activations(key), 1);

        const again = await install('browser-machine-A', 'This browser');
        assert.deepEqual(again, { id: first.id, checked: first.id });
        assert.equal(await activations(key), 1, 'the reinstall took no activation');

        const other = await install('browser-machine-B', 'Another browser');
        assert.equal(other.code, 'activation_limit', JSON.stringify(other));
        assert.equal(await activations(key), 1);
      } finally {
        await page.close();
      }
    });
  },
  { engineSpecific: false },
);
