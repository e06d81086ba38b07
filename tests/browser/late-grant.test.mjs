// The late-grant race of issue #53 (item 2) in the browser, with two real pages of one origin
// (`context()`: pages that share storage and run at once) and the installed tarball's browser
// entry, unbundled, against the emulator. One page's check gets Polar's grant, which its `fetch`
// holds; meanwhile the key is revoked and the other page records Polar's `inactive` denial (a
// validate asks at once); then the held grant arrives. It must end denied, and the storage keep
// denying: the first page's next check, the other page offline. tests/wasm_store.rs plays the
// same race with "another tab" as JS in one page; this is two pages of the engine's own.
//
// And two first trial checks at once in two pages of one origin (issue #54's local trial): the
// early page's check reads the trial's slot (no record) and is held there, between the read and
// the write; the late page's check starts meanwhile, its clock 20 days on. The slot's Web Lock
// is the origin's: the late page cannot read the slot before the early one wrote its record, so
// it reads that record, finds the trial of 14 days ended, and does not restart it. Both answer
// one start and end; a later check sees that trial, ended, not one restarted. (Without a lock
// across the pages both read "none" and the late page's own trial, 14 days from its clock, is
// written over the early one's.) tests/js/trial-race.test.mjs plays it with two node
// processes, tests/wasm_trials.rs with the Rust-on-wasm client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eachEngine } from './engines.mjs';
import { freshFolder, modulePage, newKey, serve } from './support.mjs';

const { POLAR_EMULATOR_URL: EMULATOR, CONSUMER, TOOLS } = process.env;
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
if (!EMULATOR || !CONSUMER || !TOOLS) throw new Error('run scripts/test-wasm.sh');

// The page: one client over the origin's IndexedDB, every check asking Polar. Its `fetch` holds
// the next validate's answer once `arm()` was called: `held` is set when that answer is in, and
// it goes on with `release()`. `offline` makes every request fail as a browser's does.
const PAGE = `import { LicenseClient } from '../node_modules/polar-license/browser.js';
let offline = false;
let hold = null;
let letGo = null;
const client = (org, api) =>
  new LicenseClient({
    organizationId: org,
    baseUrl: api,
    storage: 'indexedDB',
    gracePolicy: { revalidateAfter: 0 },
    fetch: async (url, init) => {
      if (offline) throw new TypeError('Failed to fetch');
      const response = await fetch(url, init);
      if (hold !== null && String(url).includes('/validate') && response.ok) {
        const waiting = hold;
        hold = null;
        document.body.dataset.held = '1';
        await waiting;
      }
      return response;
    },
  });
const settle = (p) =>
  p.then(
    (r) => ({ licensed: true, source: r.source }),
    (e) => ({ licensed: false, code: e.code, detail: e.detail }),
  );
let app;
window.late = {
  open(org, api) {
    app = client(org, api);
  },
  activate: (key) => settle(app.activate(key, { label: 'tab' })),
  arm() {
    hold = new Promise((ok) => (letGo = ok));
  },
  release: () => letGo(),
  /** Starts a check; its answer lands in \`window.late.answer\`. */
  start(key) {
    settle(app.check(key)).then((a) => {
      window.late.answer = a;
      document.body.dataset.answered = '1';
    });
  },
  validate: (key) => settle(app.validate(key)),
  check(key, off) {
    offline = off;
    return settle(app.check(key));
  },
  async standing(key) {
    const s = await app.status(key);
    return s.standing;
  },
};
document.body.dataset.ready = '1';
`;

const DAY = 86400;
/** How long (ms) the test waits for the late page to read the slot while the early one holds it. */
const MEET = 1000;

// The page: a client with a trial of 14 days over the origin's localStorage or IndexedDB (the
// page's \`?store=\`), through a storage of the page's own whose first read of the trial's slot is
// held until \`go()\`; \`body.dataset.read\` says what it read ('none' or 'record').
const TRIAL_PAGE = `import { LicenseClient } from '../node_modules/polar-license/browser.js';
const db = await new Promise((ok, ko) => {
  const open = indexedDB.open('trial-race', 1);
  open.onupgradeneeded = () => open.result.createObjectStore('kv');
  open.onsuccess = () => ok(open.result);
  open.onerror = () => ko(open.error);
});
const run = (mode, op) =>
  new Promise((ok, ko) => {
    const tx = db.transaction('kv', mode);
    const request = op(tx.objectStore('kv'));
    tx.oncomplete = () => ok(request.result ?? null);
    tx.onerror = tx.onabort = () => ko(tx.error);
  });
const backing =
  new URL(location.href).searchParams.get('store') === 'indexedDB'
    ? { get: (n) => run('readonly', (kv) => kv.get(n)), set: (n, v) => run('readwrite', (kv) => kv.put(v, n)), remove: (n) => run('readwrite', (kv) => kv.delete(n)) }
    : { get: (n) => localStorage.getItem(n), set: (n, v) => localStorage.setItem(n, v), remove: (n) => localStorage.removeItem(n) };
let letGo = null;
const storage = {
  async get(name) {
    const text = await backing.get(name);
    if (name.includes('trial-') && !document.body.dataset.read) {
      const held = new Promise((ok) => (letGo = ok));
      document.body.dataset.read = text === null ? 'none' : 'record';
      await held;
    }
    return text;
  },
  set: (name, text) => backing.set(name, text),
  remove: (name) => backing.remove(name),
};
const client = (org, api, at) => new LicenseClient({ organizationId: org, baseUrl: api, storage, trial: 14, clock: () => at * 1000 });
const trialOf = (p) => p.then(() => ({ code: 'licensed' }), (e) => ({ code: e.code, trial: e.trial ?? null, detail: e.detail }));
let app;
window.race = {
  /** The page's client, its clock at \`at\` (unix seconds); the install secret made. */
  async open(org, api, at) {
    app = client(org, api, at);
    await app.rememberedKey();
  },
  /** Starts the first check; its answer lands in \`window.race.answer\`. */
  start() {
    trialOf(app.check()).then((a) => {
      window.race.answer = a;
      document.body.dataset.answered = '1';
    });
  },
  go: () => letGo(),
  /** A later check by another client of this page, its clock at \`at\`. */
  later: (org, api, at) => trialOf(client(org, api, at).check()),
};
document.body.dataset.ready = '1';
`;

let site;

before(async () => {
  await freshFolder(CONSUMER, 'late-grant', {
    'late.js': PAGE,
    'index.html': modulePage('./late.js'),
    // The trial race's page, beside it.
    'race.js': TRIAL_PAGE,
    'race.html': modulePage('./race.js'),
  });
  site = await serve(CONSUMER);
});

after(() => site?.server.close());

async function revoke(key) {
  const resp = await fetch(`${EMULATOR}/__emulator/keys/${key}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ status: 'revoked' }),
  });
  assert.equal(resp.status, 200);
}

// Where context() pages share storage and run at once: Chromium (the browser) and Firefox
// (WebKitGTK's are loads of one window, one after the other: a held page would hold the other).
const NOT_AT_ONCE = { webkit: 'WebKitGTK: context() pages are loads of one window, one at a time' };

eachEngine(TOOLS, (engine, browser) => {
  test(`${engine}: a denial another page records while this page's grant is held survives the grant (issue #53)`, { skip: NOT_AT_ONCE[engine] }, async () => {
    const key = await newKey(EMULATOR, 'LATE', { limit_activations: 3 });
    const context = await browser.context();
    try {
      const pages = [];
      for (let i = 0; i < 2; i++) {
        const page = await context.open(`${site.url}/late-grant/index.html`);
        await page.waitFor(() => document.body?.dataset.ready);
        await page.evaluate(([org, api]) => window.late.open(org, api), [ORG, EMULATOR]);
        pages.push(page);
      }
      const [held, other] = pages;
      const problems = () => pages.flatMap((p) => p.problems).join('\n');
      const activated = await other.evaluate((k) => window.late.activate(k), key);
      assert.equal(activated.licensed, true, JSON.stringify(activated));

      await held.evaluate(() => window.late.arm());
      await held.evaluate((k) => window.late.start(k), key);
      await held.waitFor(() => document.body.dataset.held); // Polar granted; the answer is held

      // Meanwhile: revoked, and the other page records Polar's denial.
      await revoke(key);
      const denied = await other.evaluate((k) => window.late.validate(k), key);
      assert.equal(denied.code, 'inactive', JSON.stringify(denied));

      await held.evaluate(() => window.late.release());
      await held.waitFor(() => document.body.dataset.answered);
      const late = await held.evaluate(() => window.late.answer);
      assert.deepEqual(
        { licensed: late.licensed, code: late.code },
        { licensed: false, code: 'inactive' },
        `${browser.version}: the late grant must end denied: ${JSON.stringify(late)}; ${problems()}`,
      );

      // The storage keeps denying: this page's next check (Polar asked again), the other page
      // offline, and both pages' status.
      const next = await held.evaluate((k) => window.late.check(k, false), key);
      assert.equal(next.licensed, false, JSON.stringify(next));
      const offline = await other.evaluate((k) => window.late.check(k, true), key);
      assert.equal(offline.licensed, false, JSON.stringify(offline));
      for (const page of pages) assert.equal(await page.evaluate((k) => window.late.standing(k), key), 'denied');
    } finally {
      await context.close();
    }
  });

  for (const store of ['localStorage', 'indexedDB']) {
  test(`${engine}, ${store}: two pages' first trial checks start one trial; the late one finds it ended, not restarted (issue #54)`, { skip: NOT_AT_ONCE[engine] }, async () => {
    const start = Math.floor(Date.now() / 1000);
    const context = await browser.context();
    try {
      const pages = [];
      for (const at of [start, start + 20 * DAY]) {
        const page = await context.open(`${site.url}/late-grant/race.html?store=${store}`);
        await page.waitFor(() => document.body?.dataset.ready);
        await page.evaluate(([org, api, t]) => window.race.open(org, api, t), [ORG, EMULATOR, at]);
        pages.push(page);
      }
      const [early, late] = pages;
      const problems = () => pages.flatMap((p) => p.problems).join('\n');

      await early.evaluate(() => window.race.start());
      await early.waitFor(() => document.body.dataset.read); // read no record; held
      await late.evaluate(() => window.race.start());
      // The late page's read, if it comes while the early page holds the slot (it must not).
      const met = await late.waitFor(() => document.body.dataset.read, undefined, MEET).then(
        () => true,
        () => false,
      );
      await early.evaluate(() => window.race.go());
      await early.waitFor(() => document.body.dataset.answered);
      await late.waitFor(() => document.body.dataset.read);
      await late.evaluate(() => window.race.go());
      await late.waitFor(() => document.body.dataset.answered);

      const reads = [];
      for (const page of pages) reads.push(await page.evaluate(() => document.body.dataset.read));
      const [first, second] = [await early.evaluate(() => window.race.answer), await late.evaluate(() => window.race.answer)];
      const why = `${browser.version}: met ${met}, read ${reads}; ${JSON.stringify([first, second])}; ${problems()}`;
      const trial = { local: true, startedAt: start, endsAt: start + 14 * DAY };
      assert.deepEqual([first.code, first.trial], ['invalid_input', { ...trial, state: 'active', daysLeft: 14 }], why);
      assert.deepEqual([second.code, second.trial], ['invalid_input', { ...trial, state: 'ended', daysLeft: 0 }], why);
      // The late page waited for the lock: it read the early page's record.
      assert.deepEqual([met, reads], [false, ['none', 'record']], why);
      // A later check, in either page: the one trial, ended.
      for (const page of pages) {
        const again = await page.evaluate(([org, api, t]) => window.race.later(org, api, t), [ORG, EMULATOR, start + 21 * DAY]);
        assert.deepEqual(again.trial, { ...trial, state: 'ended', daysLeft: 0 }, why);
      }
    } finally {
      await context.close();
    }
  });
  }
});
