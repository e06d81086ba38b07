// Workers keep the grace (issue #14): a module worker has no localStorage, so its default store
// is IndexedDB; a second worker (a restart: a new realm, nothing in memory shared) answers from
// what the first one cached, with no request. The installed tarball's browser entry, unbundled,
// in each browser engine (tests/browser/engines.mjs: Chromium, Firefox ESR, WebKitGTK) against
// the emulator.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eachEngine } from './engines.mjs';
import { freshFolder, modulePage, newKey, serve } from './support.mjs';

const { POLAR_EMULATOR_URL: EMULATOR, CONSUMER, TOOLS } = process.env;
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
if (!EMULATOR || !CONSUMER || !TOOLS) throw new Error('run scripts/test-wasm.sh');

let site;

before(async () => {
  await freshFolder(CONSUMER, 'idb', {
    'worker.js': `import { LicenseClient } from '../node_modules/polar-license/browser.js';
onmessage = async (e) => {
  const { key, org, api, storage } = e.data;
  try {
    const client = new LicenseClient({ organizationId: org, baseUrl: api, ...(storage ? { storage } : {}) });
    const verdict = await client.check(key);
    const status = await client.status(key);
    postMessage({ source: verdict.source, storage: status.storage });
  } catch (err) {
    postMessage({ error: err.code ? err.code + ': ' + err.detail : String(err) });
  }
};
`,
    'start.js': `const params = new URLSearchParams(location.search);
function once(storage) {
  return new Promise((ok) => {
    const w = new Worker('./worker.js', { type: 'module' });
    w.onmessage = (e) => { w.terminate(); ok(e.data); };
    w.onerror = (e) => { w.terminate(); ok({ error: String(e.message) }); };
    w.postMessage({ key: params.get('key'), org: params.get('org'), api: params.get('api'), storage });
  });
}
const first = await once(null);
const second = await once(null);
const memory = await once('memory');
document.body.dataset.result = JSON.stringify([first, second, memory]);
`,
    'index.html': modulePage('./start.js'),
  });
  site = await serve(CONSUMER);
});

after(() => site?.server.close());

eachEngine(TOOLS, (engine, browser) => {
  test('a restarted module worker answers from the IndexedDB the first one wrote', async () => {
    const key = await newKey(EMULATOR, 'IDB');
    const query = new URLSearchParams({ key, org: ORG, api: EMULATOR });
    const page = await browser.open(`${site.url}/idb/index.html?${query}`);
    await page.waitFor(() => document.body?.dataset.result);
    const [first, second, memory] = JSON.parse(await page.evaluate(() => document.body.dataset.result));
    const why = `${browser.version}: ${page.problems.join('\n')}`;
    assert.deepEqual(first, { source: 'online', storage: 'indexedDB' }, why);
    // The restart: a new worker, no memory shared, answered from the cache (no request).
    assert.deepEqual(second, { source: 'cache', storage: 'indexedDB' }, why);
    // A memory store in a new worker starts empty: asked online again.
    assert.deepEqual(memory, { source: 'online', storage: 'memory' }, why);
    // What the page's realm holds: the install secret, the record and its ledger.
    const names = await page.evaluate(
      () =>
        new Promise((ok, ko) => {
          const r = indexedDB.open('polar-license');
          r.onsuccess = () => {
            const all = r.result.transaction('kv').objectStore('kv').getAllKeys();
            all.onsuccess = () => ok(all.result);
            all.onerror = () => ko(all.error);
          };
          r.onerror = () => ko(r.error);
        }),
    );
    // The record, its ledger and its clock note.
    assert.equal(names.filter((n) => n.startsWith('polar-license.v2-')).length, 3, `${names}`);
    assert.ok(names.includes('polar-license.install-secret'), `${names}`);
    await page.close();
  });
});
