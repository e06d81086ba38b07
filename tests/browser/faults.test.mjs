// The fault matrix (issue #6 item 3) in each browser engine (tests/browser/engines.mjs:
// Chromium, Firefox ESR, WebKitGTK): the rows and what each must do are tests/js/fault-rows.mjs's,
// the clients run in a page (the installed tarball's browser entry, on another origin than the
// matrix's emulator, so every request is a CORS request), driven through the page. What a
// browser's fetch does with each fault is its own (a timeout's abort, a truncated or a 50 MB
// body, a connection to let go of), and a page cannot read `Retry-After` (Polar does not expose
// it): its block after a 429 is Polar's default. WebKitGTK's fetch gives a body cut short of its
// content-length as if it were whole; the core then finds it ends early (still protocol_error,
// and still no verdict: the cache grants).
//
// One row is a page's alone: an error page without CORS headers (a proxy's or a CDN's 502, not
// Polar's), which a page cannot read at all: `offline`, and the cache grants as for any fault.
//
// The rows are written to target/fault-matrix/js-<engine>.tsv for scripts/fault-table.sh.
import { test, before, after } from 'node:test';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eachEngine } from './engines.mjs';
import { serve } from './support.mjs';
import { MATRIX } from '../js/emulator.mjs';
import { ROWS, runRecorded, writeRows } from '../js/fault-rows.mjs';

const { CONSUMER, TOOLS } = process.env;
if (!MATRIX || !CONSUMER || !TOOLS) throw new Error('run scripts/test-wasm.sh (POLAR_MATRIX_URL, CONSUMER, TOOLS)');

const NO_CORS = [
  'status_502_no_cors',
  {
    kind: 'respond',
    status: 502,
    headers: [['content-type', 'text/html']],
    body: '<html><body><h1>502 Bad Gateway</h1></body></html>',
  },
  'offline',
];

// The page's side: named clients over Map stores, the clock the test sets, every call settled
// into plain data (what crosses back to the test).
const PAGE = `<!doctype html>
<meta charset="utf-8">
<p id="status">loading</p>
<script type="module">
  import { LicenseClient } from './node_modules/polar-license/browser.js';

  const mapStorage = () => {
    const map = new Map();
    return { get: (n) => map.get(n), set: (n, v) => void map.set(n, v), remove: (n) => void map.delete(n) };
  };
  const pick = (o, names) => Object.fromEntries(names.filter((n) => o?.[n] !== undefined).map((n) => [n, o[n]]));
  let now = Date.now();
  let stores = {};
  const clients = {};
  window.matrix = {
    reset() {
      stores = { cached: mapStorage(), empty: mapStorage() };
    },
    setNow(ms) {
      now = ms;
    },
    client(name, { store, baseUrl, timeout, organizationId }) {
      clients[name] = new LicenseClient({
        organizationId,
        baseUrl,
        timeout,
        storage: stores[store],
        clock: () => now,
        gracePolicy: { revalidateAfter: 0 },
      });
    },
    async call(name, op, key) {
      const c = clients[name];
      if (op === 'status') return pick(await c.status(key), ['state', 'verifiedAt', 'denied', 'graceRemaining']);
      try {
        const v = await c[op](key);
        return { code: 'licensed/' + (v.source ?? 'online'), value: pick(v, ['source', 'verifiedAt', 'graceRemaining', 'reason', 'cacheRefreshed']) };
      } catch (e) {
        if (typeof e?.code !== 'string') return { bug: String(e) };
        return { code: e.code, error: pick(e, ['kind', 'timeout', 'retryAfter', 'detail', 'message']) };
      }
    },
  };
  document.querySelector('#status').textContent = 'ready';
</script>
`;

let site;

before(async () => {
  await writeFile(join(CONSUMER, 'fault-matrix.html'), PAGE);
  site = await serve(CONSUMER);
});

after(() => site?.server.close());

eachEngine(TOOLS, (engine, browser) => {
  let page;
  const found = [];
  before(async () => {
    page = await browser.open(`${site.url}/fault-matrix.html`);
    await page.waitFor(() => document.querySelector('#status')?.textContent === 'ready');
  });
  after(async () => {
    await writeRows(found, `js-${engine}`);
    await page?.close();
  });

  const call = async (name, op, key) => {
    const r = await page.evaluate(([n, o, k]) => window.matrix.call(n, o, k), [name, op, key]);
    if (r?.bug) throw new Error(`${browser.version}: not a LicenseError: ${r.bug}`);
    return r;
  };
  /** tests/js/fault-rows.mjs's host: the clients are the page's. */
  const host = {
    page: true,
    cutBodyWhole: engine === 'webkit',
    reset: () => page.evaluate(() => window.matrix.reset()),
    setNow: (ms) => page.evaluate((t) => window.matrix.setNow(t), ms),
    async client(name, options) {
      await page.evaluate(([n, o]) => window.matrix.client(n, o), [name, options]);
      return {
        validate: (k) => call(name, 'validate', k),
        check: (k) => call(name, 'check', k),
        status: (k) => call(name, 'status', k),
      };
    },
  };

  for (const row of [...ROWS, NO_CORS]) {
    test(row[0], async () => {
      try {
        await runRecorded(row, found, host);
      } catch (e) {
        e.message = `${browser.version}: ${e.message}`;
        throw e;
      }
    });
  }
});
