// Two first trial checks at once in two pages of one origin (issue #54's local trial), with the
// installed tarball's browser entry, unbundled: the early page's check reads the trial's slot
// (no record) and is held there, between the read and the write; the late page's check starts
// meanwhile, its clock 20 days on. The slot's Web Lock is the origin's: the late page cannot
// read the slot before the early one wrote its record, so it reads that record, finds the trial
// of 14 days ended, and does not restart it. Both answer one start and end; a later check sees
// that trial, ended, not one restarted. (Without a lock across the pages both read "none" and
// the late page's own trial, 14 days from its clock, is written over the early one's.)
// tests/js/trial-race.test.mjs plays it with two node processes, tests/wasm_trials.rs with the
// Rust-on-wasm client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eachEngine } from './engines.mjs';
import { serve } from './support.mjs';

const { POLAR_EMULATOR_URL: EMULATOR, CONSUMER, TOOLS } = process.env;
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
if (!EMULATOR || !CONSUMER || !TOOLS) throw new Error('run scripts/test-wasm.sh');

const DAY = 86400;
/** How long (ms) the test waits for the late page to read the slot while the early one holds it. */
const MEET = 1000;

// The page: a client with a trial of 14 days over the origin's localStorage, through a storage
// of the page's own whose first read of the trial's slot is held until `go()`; `body.dataset.read`
// says what it read ('none' or 'record').
const PAGE = `import { LicenseClient } from '../node_modules/polar-license/browser.js';
let letGo = null;
const storage = {
  async get(name) {
    const text = localStorage.getItem(name);
    if (name.includes('trial-') && !document.body.dataset.read) {
      const held = new Promise((ok) => (letGo = ok));
      document.body.dataset.read = text === null ? 'none' : 'record';
      await held;
    }
    return text;
  },
  set: (name, text) => localStorage.setItem(name, text),
  remove: (name) => localStorage.removeItem(name),
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
  const dir = join(CONSUMER, 'trial-race');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'race.js'), PAGE);
  await writeFile(join(dir, 'index.html'), '<!doctype html>\n<meta charset="utf-8">\n<body>\n<script type="module" src="./race.js"></script>\n');
  site = await serve(CONSUMER);
});

after(() => site?.server.close());

// Where context() pages share storage and run at once (as tests/browser/late-grant.test.mjs).
const NOT_AT_ONCE = { webkit: 'WebKitGTK: context() pages are loads of one window, one at a time' };

eachEngine(TOOLS, (engine, browser) => {
  test(`${engine}: two pages' first trial checks start one trial; the late one finds it ended, not restarted (issue #54)`, { skip: NOT_AT_ONCE[engine] }, async () => {
    const start = Math.floor(Date.now() / 1000);
    const context = await browser.context();
    try {
      const pages = [];
      for (const at of [start, start + 20 * DAY]) {
        const page = await context.open(`${site.url}/trial-race/index.html`);
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
});
