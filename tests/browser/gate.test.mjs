// The activation screen, <polar-license-gate> of polar-license/ui (issue #54 item 1), as the
// installed tarball in each browser engine (tests/browser/engines.mjs: Chromium, Firefox ESR,
// WebKitGTK), against an emulator of its own (the package's polar-license/emulator in this
// process: its faults touch no other suite), on another origin than the page (every POST
// preflighted). One page per engine; its states driven in sequence through the form, as a
// person would (the key typed into the <input>, the button pressed): empty, each refusal
// (invalid input, a key of another organization, revoked, expired, the activation limit, offline
// with nothing cached), activating (the client's requests held until released), licensed,
// offline within the grace, offline past it (the page's clock moved), deactivated, rate limited. In each state:
//   - the state, the reason code and the sentence shown (DEFAULT_STRINGS with the redacted key);
//   - the whole key nowhere: the element's shadow tree and attributes, the input's value, the
//     page, every polar-license-change event's detail;
//   - axe-core (scripts/npm's pinned copy) finds no violation in the page, shadow tree included;
//   - a screenshot: target/npm/gate/<engine>-<state>.png, and with GATE_SHOTS=DIR the Chromium
//     ones of the gate alone into DIR (docs/img/gate/ holds them: the guides show them).
// Issue #64: a refusal the library calls unverified (offline) keeps the key for "Try again"; at
// the activation limit "Free a seat" signs in with the code the emulator "emails" (read from its
// control route, as a person reads the email; a wrong code first), lists the key's devices, frees
// one and activates the kept key, never retyped; for a product without device management Polar
// lists none and the gate says so, Back returning to the refusal; "Lost your key?" lists the customer's keys
// (granted, unexpired: an expired and a revoked key of the same customer are not offered) by
// their display form and activates the one picked; an email of two accounts asks which one first.
// Each of those states is screenshotted too.
// Issue #68: a denial the seller's relay explains (its polar-license-stopped header, added by the
// page's fetch in front of the emulator's real denial, as tests/js/stopped.test.mjs does) says
// why the key stopped, each kind in its words with its dates, and keeps "Try again" for a key
// that may license again: the subscription resumed, it checks again and licenses (no new seat).
// Focus: after a refusal on the input (aria-invalid), after the activation on the title. Also: a
// client without the key (an Electron preload's bridge) checked and deactivated with none; the
// app's strings; README's three lines as they are (the element made from options), last.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { eachEngine } from './engines.mjs';
import { axeViolations, gatePage, gateShot, serve, writeGatePage } from './support.mjs';

const { CONSUMER, TOOLS, SCREENSHOT, GATE_SHOTS } = process.env;
if (!CONSUMER || !TOOLS) throw new Error('run scripts/test-wasm.sh (CONSUMER, TOOLS)');
const PACKAGE = join(CONSUMER, 'node_modules', 'polar-license');
const SHOTS = join(SCREENSHOT ? dirname(SCREENSHOT) : join(CONSUMER, '..'), 'gate');
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
const OTHER_ORG = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const PORTAL = 'https://polar.sh/example/portal';
// A benefit whose customers may manage their devices (enable_customer_admin), and its customer.
const BENEFIT = '5b1d9c7e-3a2f-4e6d-8c9b-1a2b3c4d5e6f';
// One customer per engine (the emulator is shared: an email of two customers would ask which).
const ENGINE_DIGIT = { chromium: '1', firefox: '2', webkit: '3' };
const CUSTOMERS = { chromium: '6c2e0d8f-4b3a-4f7e-9d0c-2b3c4d5e6f71', firefox: '6c2e0d8f-4b3a-4f7e-9d0c-2b3c4d5e6f72', webkit: '6c2e0d8f-4b3a-4f7e-9d0c-2b3c4d5e6f73' };
const README = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md');

const { DEFAULT_STRINGS, redactKey } = await import(pathToFileURL(join(PACKAGE, 'ui.js')).href);
/** Each reason's words, the core's (the packed engine's reason table, as scripts/npm/reasons.mjs
 * reads it): what a refusal's userMessage says and the gate shows. */
const CORE_WORDS = await (async () => {
  const glue = await import(pathToFileURL(join(PACKAGE, 'polar_license.js')).href);
  glue.initSync({ module: await readFile(join(PACKAGE, 'polar_license_bg.wasm')) });
  const options = JSON.stringify({ organizationId: ORG });
  const rows = JSON.parse(new glue.Engine(options, 'null').call('reasonTable', []));
  return Object.fromEntries(rows.map((r) => [r.code, r.userMessage]));
})();
/** What the core says where nothing failed (src/message.rs: `LICENSED`, `DEACTIVATED`,
 * `NO_DEVICES`, `UNKNOWN`, `licensed_offline`; issue #80: the gate kept its own English for them), each as
 * its answer's `userMessage` hands it to the page: the gate shows these unless the app set its
 * own (`licensed`, `deactivated`, `noDevices`, `offlineGrace`). */
const CORE_SAID = {
  licensed: 'This device is licensed.',
  deactivated: 'This device is deactivated and its seat is free for another device: activate a license key to use the app here again.',
  noDevices: 'Polar lists no device for this license key: deactivate the key in the app on the other device, or contact the seller.',
  // A failure the library has no words for (an app's own client that threw): the last resort.
  unknown: 'The license could not be checked: try again.',
  // Within a week's grace: 6 days and some hours, or 7 days, in the core's words.
  offlineGrace: /^Polar could not be reached, so this device stays licensed for (6 days( \d+ hours?)?|7 days) more: connect to the internet before then to keep it licensed\.$/,
};
/** Why a key stopped, each detail and its sentence: the table every face reads. */
const STOPPED_ROWS = JSON.parse(await readFile(join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors', 'stopped-messages.json'), 'utf8')).rows;
const { startEmulator } = await import(pathToFileURL(join(PACKAGE, 'emulator.js')).href);

const PAGE = gatePage('activation', `<polar-license-gate portal-url="${PORTAL}" device-label="Ada's laptop"></polar-license-gate>`, `
  import { LicenseClient } from './node_modules/polar-license/browser.js';
  import './node_modules/polar-license/ui.js';

  const q = new URLSearchParams(location.search);
  let held = null;
  const gate = document.querySelector('polar-license-gate');
  const events = [];
  gate.addEventListener('polar-license-change', (e) => events.push(e.detail));
  window.gateTest = {
    events,
    // The client's requests wait here until release(): the 'activating' state, held still.
    hold() {
      let release;
      held = new Promise((ok) => (release = ok));
      window.gateTest.release = () => {
        held = null;
        release();
      };
    },
  };
  // A client as an Electron preload's bridge gives it: no rememberedKey(), check() and
  // deactivate() with no key use the key the other side remembers (the page never holds it).
  window.gateTest.bridge = () => {
    const inner = window.gateTest.inner ?? new LicenseClient({ organizationId: q.get('org'), baseUrl: q.get('api'), storage: 'memory', rememberKeys: true });
    window.gateTest.inner = inner;
    gate.client = {
      activate: (key, options) => inner.activate(key, options),
      check: (key) => (key ? inner.check(key) : inner.check()),
      deactivate: async (key) => inner.deactivate(key ?? (await inner.rememberedKey())),
    };
  };
  // "Free a seat" and "Lost your key?" through polar-license/devices.
  const { Devices } = await import('./node_modules/polar-license/devices.js');
  gate.devices = new Devices({ organizationId: q.get('org'), baseUrl: q.get('api') });
  gate.client = new LicenseClient({
    organizationId: q.get('org'),
    baseUrl: q.get('api'),
    storage: 'memory',
    // Every check asks Polar (then falls back to the cache): the offline state is reachable.
    gracePolicy: { revalidateAfter: 0 },
    // The test moves this client's clock (the grace's end).
    clock: () => Date.now() + (window.gateTest.skew ?? 0),
    fetch: async (url, init) => {
      if (held) await held;
      const resp = await fetch(url, init);
      // The seller's relay in front of Polar adds why a key stopped to a denial (issue #68).
      const stopped = window.gateTest.stopped;
      if (!stopped || resp.ok) return resp;
      const headers = new Headers(resp.headers);
      headers.set('polar-license-stopped', stopped);
      return new Response(await resp.arrayBuffer(), { status: resp.status, statusText: resp.statusText, headers });
    },
  });
  window.gateTest.ready = true;
`);

let site;
let emu;

before(async () => {
  await writeGatePage(CONSUMER, TOOLS, 'gate.html', PAGE);
  site = await serve(CONSUMER);
  // Polar's 2027-01 answers: the seat holder and the subscription reach the screen.
  emu = await startEmulator({
    seed: { organization_id: ORG, license_keys: [], benefits: [{ id: BENEFIT, enable_customer_admin: true }] },
    apiVersion: '2027-01',
  });
  await mkdir(SHOTS, { recursive: true });
  if (GATE_SHOTS) await mkdir(GATE_SHOTS, { recursive: true });
});

after(async () => {
  site?.server.close();
  await emu?.close();
});

/** A fresh key on the emulator with these seed fields. */
function newKey(fields = {}) {
  const key = `GATE-${randomBytes(12).toString('hex').toUpperCase()}`;
  emu.addKey({ key, ...fields });
  return key;
}

test("a bundler keeps import 'polar-license/ui' (package.json's sideEffects names it)", async () => {
  const entry = join(CONSUMER, 'gate-bundle-entry.js');
  await writeFile(entry, "import 'polar-license/ui';\n");
  const { stdout, stderr } = await promisify(execFile)(join(TOOLS, '.bin', 'esbuild'), [entry, '--bundle', '--format=esm', '--platform=browser'], {
    cwd: CONSUMER,
    maxBuffer: 64 << 20,
  });
  assert.doesNotMatch(stderr, /ignored-bare-import/);
  assert.match(stdout, /customElements\.define\(TAG, PolarLicenseGate\)/);
});

test('ui.d.ts names every string of DEFAULT_STRINGS, and no other', async () => {
  const dts = await readFile(join(PACKAGE, 'ui.d.ts'), 'utf8');
  const start = dts.indexOf('export interface GateStrings');
  const declared = [...dts.slice(start, dts.indexOf('\n}\n', start)).matchAll(/^  (\w+): string;/gm)].map((m) => m[1]);
  assert.ok(declared.includes('freeSeat') && declared.includes('title'), declared.join());
  assert.deepEqual([...declared].sort(), Object.keys(DEFAULT_STRINGS).sort());
  // The optional ones have no English string: why a key stopped, and the failures of the
  // sign-in and the lists (polar-license/devices' codes), are the core's sentence (the error's
  // userMessage) unless the app sets its own words (issue #80: none of the gate's); so are the
  // licensed and offline states, a deactivation, an empty list and a failure with no words.
  const optional = [...dts.slice(start, dts.indexOf('\n}\n', start)).matchAll(/^  (\w+)\?: string;/gm)].map((m) => m[1]);
  const portal = ['invalid_email', 'invalid_code', 'not_signed_in', 'customer_selection_required', 'refused', 'code_invalid_or_expired', 'session_expired', 'device_management_off', 'key_not_found'];
  assert.ok(portal.every((k) => optional.includes(k)), optional.join());
  const said = ['licensed', 'offlineGrace', 'deactivated', 'noDevices', 'noKeys', 'unknown'];
  assert.ok(said.every((k) => optional.includes(k)), optional.join());
  assert.ok(optional.length > 0 && optional.every((k) => (k.startsWith('stopped_') || portal.includes(k) || said.includes(k)) && !(k in DEFAULT_STRINGS)), optional.join());
});

// Chromium alone by default (engines.mjs, enginesFor), Firefox and WebKit with FULL=1: the gate's
// engine calls are the package's storage and fetch, which the engine-specific suites (tabs,
// late-grant, worker-storage, signed, faults, e2e) play in all three, and its screenshots are
// kept, not compared.
eachEngine(TOOLS, (engine, browser) => {
  let page;
  const keys = [];

  before(async () => {
    const query = new URLSearchParams({ api: emu.url, org: ORG });
    page = await browser.open(`${site.url}/gate.html?${query}`);
    await page.waitFor(() => window.gateTest?.ready && document.querySelector('polar-license-gate')?.getAttribute('state') === 'empty');
  });
  after(() => page?.close());

  const snapshot = () =>
    page.evaluate(() => {
      const gate = document.querySelector('polar-license-gate');
      const root = gate.shadowRoot;
      const visible = (el) => !el.closest('[hidden]');
      return {
        state: gate.state,
        reason: gate.reason,
        attrs: gate.outerHTML,
        shadow: root.innerHTML,
        page: document.body.outerHTML,
        input: root.querySelector('input').value,
        message: root.querySelector('[part~=message]').textContent,
        title: root.querySelector('h2').textContent,
        details: [...root.querySelectorAll('dt')].map((dt) => [dt.textContent, dt.nextElementSibling.textContent]),
        portal: visible(root.querySelector('[part~=portal]')) ? root.querySelector('[part~=portal]').href : null,
        buttons: [...root.querySelectorAll('button')].filter(visible).map((b) => b.textContent),
        intro: visible(root.querySelector('#intro')) ? root.querySelector('#intro').textContent : null,
        entry: visible(root.querySelector('#entry')) ? [root.querySelector('[for=entry]').textContent, root.querySelector('#entry').type, root.querySelector('#entry').value] : null,
        items: [...root.querySelectorAll('li')].map((li) => li.firstChild.textContent),
        deactivate: visible(root.querySelector('[part~=deactivate]')),
        form: visible(root.querySelector('form')),
        focus: root.activeElement?.getAttribute('part') ?? null,
        invalid: root.querySelector('input').getAttribute('aria-invalid'),
        live: root.querySelector('[part~=message]').getAttribute('role'),
        busy: root.querySelector('section').getAttribute('aria-busy'),
        disabled: [...root.querySelectorAll('[aria-disabled=true]')].filter(visible).map((b) => b.textContent),
        events: JSON.stringify(window.gateTest.events),
      };
    });

  /** Checks the key is nowhere whole, runs axe, takes the screenshot; returns the snapshot. */
  async function inState(name, expect) {
    const snap = await snapshot();
    const where = `${browser.version}, ${name}`;
    for (const key of keys) {
      for (const field of ['attrs', 'shadow', 'page', 'input', 'events']) {
        assert.ok(!snap[field].includes(key), `${where}: the whole key in ${field}`);
      }
    }
    assert.equal(snap.state, expect.state, `${where}: ${snap.message}`);
    assert.equal(snap.reason, expect.reason ?? null, `${where}: ${snap.message}`);
    if (expect.message instanceof RegExp) assert.match(snap.message, expect.message, where);
    else if (expect.message !== undefined) assert.equal(snap.message, expect.message, where);
    assert.equal(snap.live, 'status', `${where}: the message is a live region`);
    // Busy only while it works: a settled screen (issue #80) has no aria-busy and no button
    // marked disabled (a busy cursor over them, a live region screen readers may not announce).
    const working = ['activating', 'checking', 'deactivating'].includes(expect.state);
    assert.equal(snap.busy, working ? 'true' : 'false', `${where}: aria-busy`);
    if (!working) assert.deepEqual(snap.disabled, [], `${where}: aria-disabled buttons`);
    assert.deepEqual(await axeViolations(page), [], `${where}: axe-core`);
    await page.screenshot(join(SHOTS, `${engine}-${name}.png`));
    if (GATE_SHOTS && engine === 'chromium' && !/^(adapter-|bridge|subscription|deactivate-|grace-renewed|idle-)|-undated$/.test(name)) {
      await gateShot(page, join(GATE_SHOTS, `${name}.png`));
    }
    return snap;
  }

  /** Types `key` into the field and presses the button, the focus in the field. */
  const submit = (key) =>
    page.evaluate((k) => {
      const root = document.querySelector('polar-license-gate').shadowRoot;
      const input = root.querySelector('input');
      input.focus();
      input.value = k;
      root.querySelector('[part~=activate]').click();
    }, key);
  const settled = () => page.waitFor(() => !['activating', 'checking', 'deactivating'].includes(document.querySelector('polar-license-gate').state));
  // A reason's words are the core's (the engine's reason table, as the refusal's userMessage);
  // the gate's own strings only for the codes it has (the portal's).
  const said = (code, key) => (Object.hasOwn(DEFAULT_STRINGS, code) ? DEFAULT_STRINGS[code].replace('{key}', redactKey(key)) : CORE_WORDS[code]);

  /** Submits `key` and expects the refusal `code`. */
  async function refused(name, key, code, message = said(code, key)) {
    await submit(key);
    await settled();
    const snap = await inState(name, { state: 'refused', reason: code, message });
    assert.equal(snap.input, '', 'the field is cleared');
    assert.equal(snap.invalid, 'true');
    assert.equal(snap.focus, 'input', 'the focus back in the field');
    assert.equal(snap.form, true);
    return snap;
  }

  test('empty: the form, labelled, nothing said yet', async () => {
    const snap = await inState('empty', { state: 'empty', message: '' });
    assert.equal(snap.title, DEFAULT_STRINGS.title);
    assert.equal(snap.form, true);
    assert.equal(snap.deactivate, false);
    assert.equal(snap.portal, null);
    const label = await page.evaluate(() => {
      const root = document.querySelector('polar-license-gate').shadowRoot;
      const input = root.querySelector('input');
      return [...input.labels].map((l) => l.textContent).join();
    });
    assert.equal(label, DEFAULT_STRINGS.keyLabel);
  });

  test('refused: invalid input, no request', async () => {
    const before = emu.requestCount();
    await refused('invalid-input', '   ', 'invalid_input');
    assert.equal(emu.requestCount(), before);
  });

  test('refused: a key of another organization (wrong product)', async () => {
    const key = newKey({ organization_id: OTHER_ORG });
    keys.push(key);
    await refused('not-found', key, 'not_found');
  });

  test('refused: revoked', async () => {
    const key = newKey({ status: 'revoked' });
    keys.push(key);
    const snap = await refused('revoked', key, 'inactive');
    assert.equal(snap.portal, PORTAL);
  });

  test('refused: expired', async () => {
    const key = newKey({ expires_at: '2024-01-31T00:00:00Z' });
    keys.push(key);
    const snap = await refused('expired', key, 'expired');
    assert.equal(snap.portal, PORTAL);
  });

  test('refused: the activation limit, with the portal link', async () => {
    const key = newKey({ limit_activations: 1 });
    keys.push(key);
    const other = await fetch(`${emu.url}/v1/customer-portal/license-keys/activate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key, organization_id: ORG, label: 'Another device' }),
    });
    assert.equal(other.status, 200);
    const snap = await refused('activation-limit', key, 'activation_limit');
    assert.equal(snap.portal, PORTAL);
  });

  test('refused: offline with nothing cached', async () => {
    const key = newKey();
    keys.push(key);
    emu.setFault({ kind: 'close_immediately' });
    try {
      const snap = await refused('offline', key, 'offline');
      assert.equal(snap.portal, null);
    } finally {
      emu.setFault(null);
    }
  });

  test('nothing stays busy once an action ends (issue #80): licensed, deactivated, refused', async () => {
    const key = newKey({ limit_activations: 2 });
    keys.push(key);
    await submit(key);
    await settled();
    // inState checks aria-busy and aria-disabled in every state; here also the cursor.
    await inState('idle-licensed', { state: 'licensed', message: CORE_SAID.licensed });
    const cursor = () =>
      page.evaluate(() => {
        const root = document.querySelector('polar-license-gate').shadowRoot;
        return [...root.querySelectorAll('button')].filter((b) => !b.closest('[hidden]')).map((b) => `${b.textContent}: ${getComputedStyle(b).cursor}`);
      });
    assert.deepEqual(await cursor(), [`${DEFAULT_STRINGS.deactivate}: pointer`]);
    await page.evaluate(() => document.querySelector('polar-license-gate').shadowRoot.querySelector('[part~=deactivate]').click());
    await settled();
    await inState('idle-deactivated', { state: 'empty', message: CORE_SAID.deactivated });
    await submit('   ');
    await settled();
    await inState('idle-refused', { state: 'refused', reason: 'invalid_input', message: said('invalid_input', '   ') });
    assert.ok((await cursor()).every((c) => c.endsWith(': pointer')), JSON.stringify(await cursor()));
  });

  /** Clicks the visible button of `part` (the focus on it first, as a keyboard user's). */
  const press = (part, index = 0) =>
    page.evaluate(
      ({ part, index }) => {
        const button = [...document.querySelector('polar-license-gate').shadowRoot.querySelectorAll(`[part~=${part}]`)].filter((b) => !b.closest('[hidden]'))[index];
        if (!button) throw new Error(`no visible ${part} button`);
        button.focus();
        button.click();
      },
      { part, index },
    );
  /** Types into the sign-in field and presses its button; waits for the step to end. */
  const enter = async (text) => {
    await page.evaluate((t) => {
      const root = document.querySelector('polar-license-gate').shadowRoot;
      root.querySelector('#entry').focus();
      root.querySelector('#entry').value = t;
      root.querySelector('[part~=next]').click();
    }, text);
    await page.waitFor(() => document.querySelector('polar-license-gate').shadowRoot.querySelector('[part~=next]').getAttribute('aria-disabled') !== 'true');
  };
  const lastCode = async () => {
    const { codes } = await (await fetch(`${emu.url}/__emulator/customer-session/codes`)).json();
    assert.ok(codes.length > 0, 'a code was emailed');
    return codes.at(-1).code;
  };
  const step = () => page.evaluate(() => window.gateTest.events.at(-1).step);
  // This engine's customer's keys, oldest first (what "Lost your key?" may offer).
  const customerKeys = [];
  const EMAIL = `seat-${engine}@example.com`;
  const CUSTOMER = CUSTOMERS[engine];

  test('offline: the typed key kept (in memory only), "Try again" activates it once Polar answers', async () => {
    const key = newKey({ limit_activations: 2 });
    keys.push(key);
    emu.setFault({ kind: 'close_immediately' });
    let snap;
    try {
      snap = await refused('try-again', key, 'offline');
    } finally {
      emu.setFault(null);
    }
    const again = DEFAULT_STRINGS.tryAgain.replace('{key}', redactKey(key));
    assert.ok(snap.buttons.includes(again), JSON.stringify(snap.buttons));
    assert.ok(!snap.buttons.includes(DEFAULT_STRINGS.freeSeat), 'no "Free a seat" when offline');
    assert.equal(emu.activations(key).length, 0);
    await press('retry');
    await settled();
    const licensed = await inState('try-again-licensed', { state: 'licensed', message: CORE_SAID.licensed });
    assert.equal(Object.fromEntries(licensed.details)[DEFAULT_STRINGS.key], redactKey(key));
    assert.equal(emu.activations(key).length, 1);
    await page.evaluate(() => document.querySelector('polar-license-gate').deactivate());
    await settled();
    assert.equal(emu.activations(key).length, 0);
  });

  test('the activation limit: "Free a seat" signs in by email code, lists the devices, frees one, activates the kept key', async () => {
    const key = newKey({ limit_activations: 2, benefit_id: BENEFIT, customer_id: CUSTOMER, customer_email: EMAIL });
    keys.push(key);
    customerKeys.push(key);
    for (const label of ['Old laptop', 'Desktop']) {
      const r = await fetch(`${emu.url}/v1/customer-portal/license-keys/activate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key, organization_id: ORG, label }),
      });
      assert.equal(r.status, 200);
    }
    const limit = await refused('free-seat-offered', key, 'activation_limit');
    assert.ok(limit.buttons.includes(DEFAULT_STRINGS.freeSeat), JSON.stringify(limit.buttons));
    assert.ok(!limit.buttons.some((b) => b.startsWith('Try again')), 'no "Try again" for a denial');

    await press('free-seat');
    await page.waitFor(() => document.querySelector('polar-license-gate').state === 'free-seat');
    let snap = await inState('free-seat-email', { state: 'free-seat', message: '' });
    assert.equal(snap.title, DEFAULT_STRINGS.freeSeat);
    assert.deepEqual(snap.entry, [DEFAULT_STRINGS.emailLabel, 'email', '']);
    assert.equal(snap.form, false, 'the key form hidden');
    assert.equal(snap.focus, 'input entry');
    assert.equal(await step(), 'email');

    await enter('not an email');
    // The portal's failures in the core's words (the error's userMessage: src/error.rs and
    // src/portal/error.rs), none of the gate's own (issue #80).
    assert.equal(Object.hasOwn(DEFAULT_STRINGS, 'invalid_email'), false);
    await inState('free-seat-bad-email', { state: 'free-seat', reason: 'invalid_input', message: 'That is not an email address: type the email the license was bought with.' });
    await enter(EMAIL);
    snap = await inState('free-seat-code', { state: 'free-seat', message: '' });
    assert.deepEqual(snap.entry, [DEFAULT_STRINGS.codeLabel, 'text', '']);
    assert.equal(snap.intro, DEFAULT_STRINGS.codeHint.replace('{email}', EMAIL));
    assert.equal(await step(), 'code');

    await enter('ZZZZZ9');
    snap = await inState('free-seat-wrong-code', { state: 'free-seat', reason: 'code_invalid_or_expired', message: 'The sign-in code is wrong, used or more than 30 minutes old: ask for a new code and type it within 30 minutes.' });
    assert.equal(snap.entry[2], '', 'the code field cleared');
    await enter((await lastCode()).toLowerCase());
    snap = await inState('free-seat-devices', { state: 'free-seat', message: '' });
    assert.equal(await step(), 'list');
    assert.equal(snap.intro, DEFAULT_STRINGS.devicesHint.replace('{key}', redactKey(key)));
    assert.equal(snap.items.length, 2, JSON.stringify(snap.items));
    assert.match(snap.items[0], /^Old laptop \(activated .*\d{4}.*\)$/);
    assert.match(snap.items[1], /^Desktop \(activated /);
    assert.deepEqual(snap.buttons.filter((b) => b === DEFAULT_STRINGS.free).length, 2);
    assert.equal(snap.focus, 'title');

    await press('pick', 0);
    await page.waitFor(() => document.querySelector('polar-license-gate').state === 'licensed');
    snap = await inState('seat-freed', { state: 'licensed', message: CORE_SAID.licensed });
    assert.deepEqual(emu.activations(key).map((a) => a.label).sort(), ["Ada's laptop", 'Desktop']);
    assert.equal(Object.fromEntries(snap.details)[DEFAULT_STRINGS.device], "Ada's laptop");
    await page.evaluate(() => document.querySelector('polar-license-gate').deactivate());
    await settled();
  });

  test('"Free a seat" for a product without device management: no device listed, said so; Back returns to the refusal', async () => {
    // The session of the test before is still held: the list comes at once.
    const key = newKey({ limit_activations: 1, customer_id: CUSTOMER, customer_email: EMAIL });
    keys.push(key);
    customerKeys.push(key);
    const r = await fetch(`${emu.url}/v1/customer-portal/license-keys/activate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key, organization_id: ORG, label: 'Old laptop' }),
    });
    assert.equal(r.status, 200);
    await refused('free-seat-limit-again', key, 'activation_limit');
    await press('free-seat');
    await page.waitFor(() => document.querySelector('polar-license-gate').state === 'free-seat' && window.gateTest.events.at(-1).step === 'list');
    const snap = await inState('free-seat-management-off', { state: 'free-seat', message: '' });
    assert.deepEqual(snap.items, []);
    assert.equal(snap.intro, CORE_SAID.noDevices);
    await press('back');
    const back = await inState('free-seat-back', { state: 'refused', reason: 'activation_limit', message: said('activation_limit', key) });
    assert.ok(back.buttons.includes(DEFAULT_STRINGS.freeSeat));
    assert.equal(back.focus, 'input');
    assert.equal(emu.activations(key).length, 1);
  });

  test('devices of one label told apart (issue #80): this machine marked, platform and last seen when listed, the time of a shared day, else the id', async () => {
    // A reinstall's activations: one label ("Browser on Linux"), one day. The session of the
    // tests before is still held: the list comes at once.
    const key = newKey({ limit_activations: 4, benefit_id: BENEFIT, customer_id: CUSTOMER, customer_email: EMAIL });
    keys.push(key);
    customerKeys.push(key);
    const ids = [];
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${emu.url}/v1/customer-portal/license-keys/activate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key, organization_id: ORG, label: 'Browser on Linux' }),
      });
      assert.equal(r.status, 200);
      ids.push((await r.json()).id);
    }
    await refused('idle-alike-limit', key, 'activation_limit');
    // polar-license/devices' list, with what a list may say beside Polar's (the relay's platform
    // and last-seen time, this machine's activation): the first with its platform and when it
    // was last seen, the second this machine's; the last two made in the same second.
    // Unix seconds, as `activatedAt` (devices.d.ts).
    const seen = Date.UTC(2026, 10, 28, 9, 30) / 1000;
    await page.evaluate((seen) => {
      const gate = document.querySelector('polar-license-gate');
      const real = gate.devices;
      window.gateTest.realDevices = real;
      gate.devices = {
        get signedIn() {
          return real.signedIn;
        },
        requestCode: (...a) => real.requestCode(...a),
        signIn: (...a) => real.signIn(...a),
        free: (...a) => real.free(...a),
        recover: (...a) => real.recover(...a),
        list: async (...a) => {
          const listed = await real.list(...a);
          const [first, second, third, fourth] = listed.devices;
          listed.devices = [{ ...first, platform: 'Linux x86_64', lastSeen: seen }, { ...second, thisMachine: true }, third, { ...fourth, activatedAt: third.activatedAt }];
          return listed;
        },
      };
    }, seen);
    try {
      await press('free-seat');
      await page.waitFor(() => document.querySelector('polar-license-gate').state === 'free-seat' && window.gateTest.events.at(-1).step === 'list');
      const snap = await inState('free-seat-devices-alike', { state: 'free-seat', message: '' });
      const where = JSON.stringify(snap.items);
      assert.equal(snap.items.length, 4, where);
      assert.equal(new Set(snap.items).size, 4, `every row told apart: ${where}`);
      for (const item of snap.items) assert.match(item, /^Browser on Linux \(.*activated .*\d{4}/, where);
      // One day shared: each activation's time too.
      for (const item of snap.items) assert.match(item, /activated .*\d{4}.*\d{1,2}:\d{2}/, where);
      const lastSeen = await page.evaluate((s) => new Intl.DateTimeFormat('en', { dateStyle: 'long', timeStyle: 'short' }).format(new Date(s * 1000)), seen);
      assert.ok(snap.items[0].includes('Linux x86_64') && snap.items[0].includes(DEFAULT_STRINGS.lastSeen.replace('{date}', lastSeen)), where);
      assert.ok(snap.items[1].includes(DEFAULT_STRINGS.thisDevice), where);
      for (const i of [0, 1]) assert.ok(!snap.items[i].includes('…'), `no id needed: ${where}`);
      for (const i of [2, 3]) assert.ok(snap.items[i].endsWith(`${DEFAULT_STRINGS.deviceId.replace('{id}', ids[i].slice(-6))})`), where);
      assert.ok(!snap.items.slice(2).some((i) => i.includes(DEFAULT_STRINGS.thisDevice) || i.includes('last seen')), where);
    } finally {
      // Back to the refusal whatever happened (the next test starts from it).
      await page.evaluate(() => (document.querySelector('polar-license-gate').devices = window.gateTest.realDevices));
      await press('back');
    }
    await inState('idle-alike-back', { state: 'refused', reason: 'activation_limit', message: said('activation_limit', key) });
  });

  test('"Lost your key?": signed in by email code, the customer\'s activatable keys by display form, the one picked activated', async () => {
    const lost = newKey({ limit_activations: 2, benefit_id: BENEFIT, customer_id: CUSTOMER, customer_email: EMAIL });
    const expired = newKey({ customer_id: CUSTOMER, customer_email: EMAIL, expires_at: '2024-01-31T00:00:00Z' });
    const revoked = newKey({ customer_id: CUSTOMER, customer_email: EMAIL, status: 'revoked' });
    keys.push(lost, expired, revoked);
    // The app names its product by the benefit (Polar's key list names it by id only).
    await page.evaluate((benefit) => {
      const gate = document.querySelector('polar-license-gate');
      gate.products = { [benefit]: 'Example Pro' };
      gate.devices.signOut();
    }, BENEFIT);
    // Offered with the refusal of the test before too (and in the empty state: see the shots).
    const offered = await inState('recover-offered', { state: 'refused', reason: 'activation_limit' });
    assert.ok(offered.buttons.includes(DEFAULT_STRINGS.lostKey), JSON.stringify(offered.buttons));
    await press('lost-key');
    await page.waitFor(() => document.querySelector('polar-license-gate').state === 'recover');
    let snap = await inState('recover-email', { state: 'recover', message: '' });
    assert.equal(snap.title, DEFAULT_STRINGS.recoverTitle);
    await enter(EMAIL);
    await enter(await lastCode());
    snap = await inState('recover-keys', { state: 'recover', message: '' });
    assert.equal(snap.intro, DEFAULT_STRINGS.keysHint);
    // The granted, unexpired ones (the expired and the revoked key not offered), newest first:
    // the oldest, made seconds before the others, last.
    const shown = snap.items.map((item) => item.split(' ')[0]);
    assert.deepEqual([...shown].sort(), [lost, ...customerKeys].map(redactKey).sort());
    assert.equal(shown.at(-1), redactKey(customerKeys[0]));
    // Each told apart by more than its last six characters (issue #80): its product when the app
    // names it, when it was made (all today: with the time).
    for (const item of snap.items) assert.match(item, /^\*\*\*\*-\w{6} \((Example Pro, )?created .*\d{4}.*\d{1,2}:\d{2}[^)]*\)$/, JSON.stringify(snap.items));
    const byKey = (k) => snap.items[shown.indexOf(redactKey(k))];
    for (const k of [lost, customerKeys[0]]) assert.ok(byKey(k).includes('(Example Pro, created '), byKey(k));
    assert.ok(!byKey(customerKeys[1]).includes('Example Pro'), 'a key of another benefit: no product named');
    await press('pick', shown.indexOf(redactKey(lost)));
    await page.waitFor(() => document.querySelector('polar-license-gate').state === 'licensed');
    snap = await inState('recovered', { state: 'licensed', message: CORE_SAID.licensed });
    assert.equal(Object.fromEntries(snap.details)[DEFAULT_STRINGS.key], redactKey(lost));
    assert.equal(emu.activations(lost).length, 1);
    await page.evaluate(() => document.querySelector('polar-license-gate').deactivate());
    await settled();
    assert.equal(emu.activations(lost).length, 0);
  });

  test('one email, two accounts: the gate asks which (Polar\'s customer_selection_required), then signs in to that one', async () => {
    const twins = `twins-${engine}@example.com`;
    const [first, second] = [1, 2].map((n) => `6c2e0d8f-4b3a-4f7e-9d0c-2b3c4d5e6${ENGINE_DIGIT[engine]}8${n}`);
    const mine = newKey({ customer_id: second, customer_email: twins, limit_activations: 2 });
    const theirs = newKey({ customer_id: first, customer_email: twins, limit_activations: 2 });
    keys.push(mine, theirs);
    await page.evaluate(() => document.querySelector('polar-license-gate').devices.signOut());
    await press('lost-key');
    await page.waitFor(() => document.querySelector('polar-license-gate').state === 'recover');
    await enter(twins);
    let snap = await inState('recover-accounts', { state: 'recover', message: '' });
    assert.equal(await step(), 'customer');
    assert.equal(snap.intro, DEFAULT_STRINGS.accountsHint);
    assert.equal(snap.items.length, 2, JSON.stringify(snap.items));
    const customers = (await (await fetch(`${emu.url}/__emulator/customer-session/codes`)).json()).codes.length;
    // The second account listed (which of the two it is, Polar's order says).
    await press('pick', 1);
    await page.waitFor(() => window.gateTest.events.at(-1).step === 'code');
    const codes = (await (await fetch(`${emu.url}/__emulator/customer-session/codes`)).json()).codes;
    assert.equal(codes.length, customers + 1, 'one code sent for the account picked');
    await enter(codes.at(-1).code);
    snap = await inState('recover-account-keys', { state: 'recover', message: '' });
    // Only the keys of the account picked: one of the two, not both.
    const shown = snap.items.map((item) => item.split(' ')[0]);
    const picked = [mine, theirs].filter((k) => shown.includes(redactKey(k)));
    assert.equal(picked.length, 1, JSON.stringify(snap.items));
    assert.deepEqual(shown, [redactKey(picked[0])]);
    await press('back');
  });

  test('activating, then licensed: holder, expiry, device, the focus on the title', async () => {
    const key = newKey({ customer_email: 'ada@example.com', expires_at: '2031-03-15T12:00:00Z', limit_activations: 3 });
    keys.push(key);
    await page.evaluate(() => window.gateTest.hold());
    await submit(key);
    await page.waitFor(() => document.querySelector('polar-license-gate').state === 'activating');
    const busy = await inState('activating', { state: 'activating', message: DEFAULT_STRINGS.activating.replace('{key}', redactKey(key)) });
    assert.equal(busy.input, '');
    await page.evaluate(() => window.gateTest.release());
    await settled();
    const snap = await inState('licensed', { state: 'licensed', message: CORE_SAID.licensed });
    assert.equal(snap.title, DEFAULT_STRINGS.licensedTitle);
    assert.equal(snap.form, false);
    assert.equal(snap.deactivate, true);
    assert.equal(snap.focus, 'title');
    const details = Object.fromEntries(snap.details);
    assert.equal(details[DEFAULT_STRINGS.holder], 'ada@example.com');
    assert.equal(details[DEFAULT_STRINGS.key], redactKey(key));
    assert.match(details[DEFAULT_STRINGS.expires], /2031/);
    assert.equal(details[DEFAULT_STRINGS.device], "Ada's laptop");
    assert.equal(emu.activations(key).length, 1);
    const events = JSON.parse(snap.events);
    const last = events.at(-1);
    assert.equal(last.state, 'licensed');
    assert.equal(last.license.key, redactKey(key));
    assert.equal(last.license.device, "Ada's laptop");
    assert.equal(events.at(-2).state, 'activating');
  });

  test('licensed offline, within the grace: the days left', async () => {
    emu.setFault({ kind: 'close_immediately' });
    try {
      await page.evaluate(() => document.querySelector('polar-license-gate').refresh());
      await settled();
      const snap = await inState('offline-grace', { state: 'licensed', message: CORE_SAID.offlineGrace });
      assert.match(snap.attrs, /\soffline(=""|\s|>)/);
      // The app's own words in place of the core's, with the grace in the page's locale.
      await page.evaluate(() => {
        const gate = document.querySelector('polar-license-gate');
        gate.strings = { offlineGrace: 'Offline for {grace} more.' };
        return gate.refresh();
      });
      await settled();
      const own = await snapshot();
      await page.evaluate(() => (document.querySelector('polar-license-gate').strings = {}));
      assert.match(own.message, /^Offline for \d+ (days?|hours?)[^.]* more\.$/);
    } finally {
      emu.setFault(null);
    }
  });

  test('refused: offline past the grace; licensed again once Polar answers', async () => {
    const key = keys.at(-1);
    emu.setFault({ kind: 'close_immediately' });
    try {
      await page.evaluate(() => {
        window.gateTest.skew = 8 * 86400 * 1000;
        return document.querySelector('polar-license-gate').refresh();
      });
      await settled();
      const snap = await inState('grace-expired', { state: 'refused', reason: 'grace_expired', message: said('grace_expired', key) });
      assert.equal(snap.form, true);
    } finally {
      emu.setFault(null);
    }
    // The clock stays 8 days ahead: Polar's answer licenses again from then on.
    await page.evaluate(() => document.querySelector('polar-license-gate').refresh());
    await settled();
    await inState('grace-renewed', { state: 'licensed', message: CORE_SAID.licensed });
  });

  test('deactivate this device: offline, still licensed and said why; then the seat freed, the form back', async () => {
    const key = keys.at(-1);
    emu.setFault({ kind: 'close_immediately' });
    try {
      await page.evaluate(() => document.querySelector('polar-license-gate').deactivate());
      await settled();
      const snap = await inState('deactivate-offline', { state: 'licensed', reason: 'offline', message: said('offline', key) });
      assert.equal(snap.deactivate, true);
    } finally {
      emu.setFault(null);
    }
    assert.equal(emu.activations(key).length, 1);
    await page.evaluate(() => {
      const root = document.querySelector('polar-license-gate').shadowRoot;
      root.querySelector('[part~=deactivate]').focus();
      root.querySelector('[part~=deactivate]').click();
    });
    await settled();
    const snap = await inState('deactivated', { state: 'empty', message: CORE_SAID.deactivated });
    assert.equal(emu.activations(key).length, 0);
    assert.equal(snap.focus, 'input');
  });

  test("licensed through a subscription (Polar 2027-01): the seat holder, the renewal; cancelled, the end", async () => {
    const renewing = newKey({
      limit_activations: 2,
      customer_email: 'billing@example.com',
      member: { email: 'seat@example.com' },
      subscription: { status: 'active', current_period_end: '2030-07-01T00:00:00Z' },
    });
    const ending = newKey({
      limit_activations: 2,
      subscription: { status: 'active', current_period_end: '2029-08-01T00:00:00Z', cancel_at_period_end: true },
    });
    keys.push(renewing, ending);
    for (const [key, kind, year] of [
      [renewing, 'renews', /2030/],
      [ending, 'ends', /2029/],
    ]) {
      await page.evaluate((k) => document.querySelector('polar-license-gate').activate(k), key);
      await settled();
      const snap = await inState(`subscription-${kind}`, { state: 'licensed', message: CORE_SAID.licensed });
      const details = Object.fromEntries(snap.details);
      assert.match(details[DEFAULT_STRINGS[kind]] ?? '', year, JSON.stringify(snap.details));
      for (const other of ['expires', 'renews', 'ends'].filter((k) => k !== kind)) assert.equal(details[DEFAULT_STRINGS[other]], undefined);
      if (kind === 'renews') assert.equal(details[DEFAULT_STRINGS.holder], 'seat@example.com');
      await page.evaluate(() => document.querySelector('polar-license-gate').deactivate());
      await settled();
      assert.equal(emu.activations(key).length, 0);
    }
  });

  test('refused with why the key stopped (the relay\'s detail): each kind said; resumed, "Try again" licenses it', async () => {
    const key = newKey({ limit_activations: 2 });
    keys.push(key);
    await page.evaluate((k) => document.querySelector('polar-license-gate').activate(k), key);
    await settled();
    await inState('subscription-before-stop', { state: 'licensed', message: CORE_SAID.licensed });
    // Polar's answer for each: the same 404 "no longer active".
    emu.updateKey(key, { status: 'revoked' });
    // Each detail as the table every face reads (tests/vectors/stopped-messages.json: noon UTC,
    // the same day in every time zone the runner may have), said in the library's one sentence
    // for it, the refusal's userMessage.
    const at = 1810814400;
    const until = 1812024000;
    const day = (s) => page.evaluate((ms) => new Intl.DateTimeFormat('en', { dateStyle: 'long' }).format(new Date(ms)), s * 1000);
    const again = DEFAULT_STRINGS.tryAgain.replace('{key}', redactKey(key));
    const wants = {
      paused: { retry: true, portal: true },
      'paused-undated': { retry: true, portal: true },
      canceled: { retry: true, portal: true },
      'canceled-undated': { retry: true, portal: true },
      'seat-revoked': { retry: true, portal: false },
      refunded: { retry: false, portal: true },
      rotated: { retry: false, portal: true, lostKey: true },
      'past-due': { retry: true, portal: true },
    };
    const rows = STOPPED_ROWS.map((r) => [r.name, r.stopped, r.user_message, wants[r.name]]);
    assert.deepEqual(rows.map((r) => r[0]).sort(), Object.keys(wants).sort());
    for (const [name, header, message, want] of rows) {
      await page.evaluate((h) => {
        window.gateTest.stopped = h;
        return document.querySelector('polar-license-gate').refresh();
      }, header);
      await settled();
      const snap = await inState(`stopped-${name}`, { state: 'refused', reason: 'inactive', message });
      const where = `${browser.version}, ${name}`;
      assert.equal(snap.buttons.includes(again), want.retry, `${where}: ${JSON.stringify(snap.buttons)}`);
      assert.equal(snap.portal, want.portal ? PORTAL : null, where);
      if (want.lostKey) assert.ok(snap.buttons.includes(DEFAULT_STRINGS.lostKey), where);
      const kind = header.split(';')[0];
      // As JSON: a driver may not pass one object twice (the event's is the gate's).
      const seen = JSON.parse(
        await page.evaluate(() => {
          const gate = document.querySelector('polar-license-gate');
          return JSON.stringify({ stopped: gate.stopped, attr: gate.getAttribute('stopped'), event: window.gateTest.events.at(-1).stopped });
        }),
      );
      assert.equal(seen.attr, kind, where);
      assert.deepEqual(seen.stopped, seen.event, where);
      assert.equal(seen.stopped.kind, kind, where);
      assert.equal(seen.stopped.at, header.includes('at=') ? at : null, where);
      assert.equal(seen.stopped.until, header.includes('until=') ? until : null, where);
    }
    // The subscription resumes (the same key, its activation kept): "Try again" checks it.
    emu.updateKey(key, { status: 'granted' });
    await page.evaluate(() => (window.gateTest.stopped = null));
    await press('retry');
    await settled();
    const snap = await inState('subscription-resumed', { state: 'licensed', message: CORE_SAID.licensed });
    assert.equal(snap.attrs.includes(' stopped='), false, 'the attribute gone');
    assert.equal(emu.activations(key).length, 1, 'checked again, not activated again');

    // The app's words, a date in them.
    emu.updateKey(key, { status: 'revoked' });
    const german = await page.evaluate(async (h) => {
      const gate = document.querySelector('polar-license-gate');
      gate.strings = { stopped_paused_until: 'Pausiert bis {until}.' };
      window.gateTest.stopped = h;
      await gate.refresh();
      const text = gate.shadowRoot.querySelector('[part~=message]').textContent;
      gate.strings = {};
      window.gateTest.stopped = null;
      return text;
    }, `paused; until=${until}`);
    assert.equal(german, `Pausiert bis ${await day(until)}.`);
    emu.updateKey(key, { status: 'granted' });
    await page.evaluate(() => document.querySelector('polar-license-gate').refresh());
    await settled();
    await page.evaluate(() => document.querySelector('polar-license-gate').deactivate());
    await settled();
    assert.equal(emu.activations(key).length, 0);
  });

  test('refused: rate limited, with the wait', async () => {
    const key = newKey();
    keys.push(key);
    emu.setFault({ kind: 'rate_limited', retry_after: 30 });
    try {
      // A page cannot read retry-after (Polar does not expose it): the client's own block.
      await refused('rate-limited', key, 'rate_limited', /^Too many license checks at once: try again in (\d+ seconds|a minute)\.$/);
    } finally {
      emu.setFault(null);
    }
  });

  test('a bridge without the key: licensed from the key the other side remembers, deactivated', async () => {
    const key = newKey({ customer_email: 'grace@example.com', limit_activations: 2 });
    keys.push(key);
    await page.evaluate(() => window.gateTest.bridge());
    await settled();
    await inState('bridge-empty', { state: 'empty' });
    await submit(key);
    await settled();
    await inState('bridge-licensed', { state: 'licensed', message: CORE_SAID.licensed });
    // A new bridge over the same client (a reloaded window): the gate knows no key.
    await page.evaluate(() => window.gateTest.bridge());
    await page.waitFor(() => document.querySelector('polar-license-gate').state === 'licensed');
    const snap = await inState('bridge-reopened', { state: 'licensed', message: CORE_SAID.licensed });
    const details = Object.fromEntries(snap.details);
    assert.equal(details[DEFAULT_STRINGS.key], redactKey(key));
    assert.equal(details[DEFAULT_STRINGS.holder], 'grace@example.com');
    await page.evaluate(() => document.querySelector('polar-license-gate').deactivate());
    await settled();
    await inState('bridge-deactivated', { state: 'empty', message: CORE_SAID.deactivated });
    assert.equal(emu.activations(key).length, 0);
  });

  test("a client of the app's own whose failure has no words: the core's last resort, never the gate's", async () => {
    const key = newKey();
    keys.push(key);
    await page.evaluate(() => {
      const noKey = () => Promise.reject(Object.assign(new Error('no key'), { code: 'invalid_input', field: 'key' }));
      document.querySelector('polar-license-gate').client = {
        activate: () => Promise.reject(new Error('the adapter broke')),
        check: noKey,
        deactivate: noKey,
      };
    });
    await settled();
    await refused('adapter-unknown', key, 'unknown', CORE_SAID.unknown);
  });

  test("the app's strings replace the English ones", async () => {
    const title = await page.evaluate(() => {
      const gate = document.querySelector('polar-license-gate');
      gate.strings = { title: 'Lizenz aktivieren', keyLabel: 'Lizenzschlüssel' };
      const root = gate.shadowRoot;
      return [root.querySelector('h2').textContent, root.querySelector('label').textContent];
    });
    assert.deepEqual(title, ['Lizenz aktivieren', 'Lizenzschlüssel']);
  });

  /** Runs `body` on README's three lines as they are (the org and the emulator filled in), a
   * page of its own: the suite's closed first (WebKitWebDriver runs one session at once). */
  async function onReadmePage(body) {
    const readme = await readFile(README, 'utf8');
    const block = readme.match(/<!-- not-run: the three lines [^\n]*-->\n```html\n([\s\S]*?)\n```/);
    assert.ok(block, 'README has the three lines');
    assert.equal(block[1].split('\n').length, 3);
    const lines = block[1].replace("{ organizationId: 'YOUR-ORG-ID' }", `{ organizationId: '${ORG}', baseUrl: '${emu.url}', storage: 'memory' }`);
    assert.notEqual(lines, block[1]);
    const file = `readme-gate-${engine}.html`;
    await writeFile(join(CONSUMER, file), `<!doctype html>\n<html lang="en">\n<meta charset="utf-8">\n<title>README</title>\n<main>\n${lines}\n</main>\n`);
    await page?.close();
    page = null;
    const opened = await browser.open(`${site.url}/${file}`);
    try {
      await body(opened);
    } finally {
      await opened.close();
    }
  }

  test("README's three lines: the element made from options (the client entry loaded then) activates", async () => {
    await onReadmePage(async (readme) => {
      const key = newKey({ limit_activations: 1 });
      await readme.evaluate((k) => {
        const root = document.querySelector('polar-license-gate').shadowRoot;
        root.querySelector('input').value = k;
        root.querySelector('[part~=activate]').click();
      }, key);
      await readme.waitFor(() => ['licensed', 'refused'].includes(document.querySelector('polar-license-gate')?.state));
      const got = await readme.evaluate(() => {
        const gate = document.querySelector('polar-license-gate');
        return [gate.state, gate.shadowRoot.querySelector('[part~=message]').textContent];
      });
      assert.deepEqual(got, ['licensed', CORE_SAID.licensed], browser.version);
      assert.equal(emu.activations(key).length, 1);
    });
  });

  test('a first visit set up with gate.options shows "Lost your key?" at once (issue #80), with nothing else to re-render it', async () => {
    await onReadmePage(async (first) => {
      // The client entry loaded and the remembered key read (none): nothing changes after that.
      await first.waitFor(() => document.querySelector('polar-license-gate')?.client != null);
      const visible = () => {
        const b = document.querySelector('polar-license-gate').shadowRoot.querySelector('[part~=lost-key]');
        return !b.closest('[hidden]') && b.getClientRects().length > 0;
      };
      const shown = await first.waitFor(visible, undefined, 3000).then(
        () => true,
        () => false,
      );
      const state = await first.evaluate(() => document.querySelector('polar-license-gate').state);
      assert.ok(shown, `${browser.version}: "Lost your key?" not shown (state ${state})`);
      assert.equal(state, 'empty');
    });
  });

  test('the system font stack on a page of none (serif), the page\'s --polar-gate-font over it (issue #80)', async () => {
    await onReadmePage(async (plain) => {
      await plain.waitFor(() => document.querySelector('polar-license-gate')?.shadowRoot != null);
      const fonts = () =>
        plain.evaluate(() => {
          const gate = document.querySelector('polar-license-gate');
          const button = gate.shadowRoot.querySelector('[part~=activate]');
          return JSON.stringify({ page: getComputedStyle(document.body).fontFamily, gate: getComputedStyle(gate).fontFamily, button: getComputedStyle(button).fontFamily, size: getComputedStyle(gate).fontSize });
        }).then(JSON.parse);
      const before = await fonts();
      assert.doesNotMatch(before.page, /system-ui/, `${browser.version}: the page has no font of its own`);
      for (const where of ['gate', 'button']) assert.match(before[where], /^system-ui, -apple-system, "?Segoe UI"?, Roboto, .*sans-serif$/, `${browser.version}: ${where} ${before[where]}`);
      assert.equal(before.size, '16px', 'the page\'s size kept');
      await plain.evaluate(() => document.querySelector('polar-license-gate').style.setProperty('--polar-gate-font', '20px Georgia, serif'));
      const after = await fonts();
      for (const where of ['gate', 'button']) assert.match(after[where], /^Georgia, serif$/, `${browser.version}: ${where} ${after[where]}`);
      assert.equal(after.size, '20px');
    });
  });
}, { engineSpecific: false });
