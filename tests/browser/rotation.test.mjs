// Issue #78 in the browser engines: Polar's January 2027 rotation (2026-04 removed, 2027-01 made
// current) between two checks of one page, through a private emulator's control route (`POST
// /__emulator/api-versions`; a private one, so the other suites' shared emulator keeps its
// versions). The installed tarball's browser entry, cross-origin: validate and check read the
// same verdicts before and after; the bare 404 a build pinned to a removed version hears is no
// verdict (the cache answers), never not_found; and no request pinned a version. A page's
// `fetch` cannot name the library (browsers own User-Agent, and any header of ours would be a
// preflight Polar's CORS refuses: docs/polar-versions.md): each request carries the engine's
// own agent, never a bare library's, which is what Polar's edge refuses.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eachEngine } from './engines.mjs';
import { freshFolder, modulePage, newKey, serve } from './support.mjs';
import { served } from '../js/values-polar.mjs';

const { CONSUMER, TOOLS, POLAR_CLI: CLI } = process.env;
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
const REVOKED = 'DEMO-REVOKED-7A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D';
if (!CONSUMER || !TOOLS || !CLI) throw new Error('run scripts/test-wasm.sh');

const PAGE = `import { LicenseClient } from '../node_modules/polar-license/browser.js';
const settle = (p) =>
  p.then(
    (r) => ({ licensed: true, source: r.source ?? null, status: r.license?.status ?? null }),
    (e) => ({ licensed: false, code: e.code }),
  );
let client;
window.rotation = {
  open(org, api) {
    client = new LicenseClient({ organizationId: org, baseUrl: api, storage: 'localStorage', gracePolicy: { revalidateAfter: 0 } });
  },
  activate: (key) => settle(client.activate(key, { label: 'browser' })),
  async verdicts(key, revoked) {
    return [await settle(client.validate(key)), await settle(client.check(key)), await settle(client.validate(revoked))];
  },
  check: (key) => settle(client.check(key)),
};
document.body.dataset.ready = '1';
`;

let polar;
let url;
let site;

before(async () => {
  polar = await served(['emulator', '--port', '0'], { ready: null });
  url = polar.url;
  await freshFolder(CONSUMER, 'rotation', { 'rotation.js': PAGE, 'index.html': modulePage('./rotation.js') });
  site = await serve(CONSUMER);
});

after(async () => {
  site?.server.close();
  await polar?.close();
});

async function control(method, path, body) {
  const resp = await fetch(`${url}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return resp.status === 204 ? [204, null] : [resp.status, await resp.json()];
}

// Chromium alone by default (engines.mjs, enginesFor), Firefox and WebKit with FULL=1: the
// rotation is the emulator's and the core's; the page's fetch is the one faults and e2e play in
// all three engines (e2e checks each engine's own User-Agent).
eachEngine(TOOLS, (engine, browser) => {
  test(`${engine}: the rotation day changes no verdict, and no request pins a version`, async () => {
    // Each engine starts from 2026-10 current with 2026-04 still served.
    let [status] = await control('POST', '/__emulator/api-versions', {
      served: ['2026-04', '2026-10'],
      current: '2026-10',
    });
    assert.equal(status, 200);
    assert.equal((await control('POST', '/__emulator/requests/reset'))[0], 204);
    const KEY = await newKey(url, 'ROTATION', { limit_activations: 3 });
    const page = await browser.open(`${site.url}/rotation/index.html`);
    try {
      await page.waitFor(() => document.body?.dataset.ready);
      await page.evaluate(([org, api]) => window.rotation.open(org, api), [ORG, url]);
      const activated = await page.evaluate((k) => window.rotation.activate(k), KEY);
      assert.equal(activated.licensed, true, JSON.stringify(activated));
      const before = await page.evaluate(([k, r]) => window.rotation.verdicts(k, r), [KEY, REVOKED]);
      assert.deepEqual(
        before.map((v) => [v.licensed, v.status ?? v.code]),
        [[true, 'granted'], [true, 'granted'], [false, 'inactive']],
        JSON.stringify(before),
      );

      [status] = await control('POST', '/__emulator/api-versions', { served: ['2026-10', '2027-01'], current: '2027-01' });
      assert.equal(status, 200);
      const afterSwitch = await page.evaluate(([k, r]) => window.rotation.verdicts(k, r), [KEY, REVOKED]);
      assert.deepEqual(afterSwitch, before);

      // The bare 404 every route answers a build pinned to a removed version.
      // (With Polar's CORS header, so the page reads the 404 itself, not a blocked request.)
      const bare = {
        kind: 'respond',
        status: 404,
        headers: [['content-type', 'application/json'], ['access-control-allow-origin', '*']],
        body: '{"detail":"Not Found"}',
      };
      [status] = await control('POST', '/__emulator/fault', bare);
      assert.equal(status, 204);
      const heard = await page.evaluate((k) => window.rotation.check(k), KEY);
      await control('POST', '/__emulator/fault', null);
      assert.equal(heard.licensed, true, JSON.stringify(heard));
      assert.equal(heard.source, 'cache', JSON.stringify(heard));

      const [, seen] = await control('GET', '/__emulator/requests/seen');
      const requests = seen.requests ?? seen;
      assert.ok(requests.length >= 7, JSON.stringify(seen));
      for (const r of requests) {
        assert.equal(r.polar_version ?? null, null, JSON.stringify(r));
        assert.match(r.user_agent ?? '', /Mozilla\/5\.0/, `the engine's own agent: ${JSON.stringify(r)}`);
      }
      // No uncaught error in the page (the console's lines for the 404s are the engine's own).
      assert.deepEqual(page.problems.filter((p) => p.startsWith('pageerror')), []);
    } finally {
      await page.close();
    }
  });
}, { engineSpecific: false });
