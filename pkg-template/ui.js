// polar-license/ui: <polar-license-gate>, the activation screen (issue #54 item 1). A custom
// element with no dependency and no framework: it asks for the key, activates it through the
// client the app gives it (a LicenseClient of this package, or any object with its methods, such
// as an adapter over the Tauri plugin's guest package), says every refusal in plain words with
// the next step, shows the licensed state and deactivates this device. Its own entry: the
// default entry never imports it, and it imports the client's entry only when the app hands it
// options instead of a client.
//
// The key is never shown whole: once submitted the field is cleared, and every text, attribute
// and event names it as the library's redaction does (`****-` and its last six characters).
// A refusal the library calls unverified (`kind`, e.g. offline) keeps the key in memory for
// "Try again"; at the activation limit, "Free a seat" signs in by email code and lists the
// key's devices through polar-license/devices (its `devices` property), frees the one picked
// and activates the kept key; "Lost your key?" lists the customer's keys the same way. Set up
// with a checkout (`checkout`), "Buy a license" opens it and ends licensed with no key typed
// (issue #80): polar-license/devices' `buy`, the core's purchase machine. The core decides each
// step (what is listed, what a failure is, how long a key still being issued is waited for):
// this screen only shows them.

const TAG = 'polar-license-gate';

/**
 * The core's words where an answer carries no `userMessage` of its own (a client of the app's own,
 * such as an IPC bridge; an error from outside the library): licensed, licensed offline with no
 * grace end known, deactivated, an empty device or key list, and a failure the library has no
 * words for (`unknown`). Written in at pack time from the core (scripts/npm/gate-words.mjs).
 */
const CORE_WORDS = Object.freeze(/* CORE_WORDS */ {});

/** The English strings; `gate.strings = { … }` overrides any of them. `{key}` is the redacted key. */
export const DEFAULT_STRINGS = Object.freeze({
  title: 'Activate your license',
  licensedTitle: 'Licensed',
  keyLabel: 'License key',
  keyHint: 'Paste the key from your purchase email or from the customer portal.',
  activate: 'Activate',
  activating: 'Activating {key}…',
  checking: 'Checking the license…',
  // A licensed check's words, and a check licensed from the cache because Polar could not be
  // reached (with its grace left), are the library's: the check's `userMessage` (the core's
  // `message::LICENSED`, `message::licensed_offline`). Set `licensed` or `offlineGrace` (with
  // `{grace}`, the localized duration) for the app's own words.
  holder: 'Licensed to',
  key: 'Key',
  expires: 'Expires',
  renews: 'Renews',
  ends: 'Ends',
  device: 'This device',
  deactivate: 'Deactivate this device',
  deactivating: 'Deactivating this device…',
  // A deactivation's words are the library's (the answer's `userMessage`, the core's
  // `message::DEACTIVATED`); set `deactivated` for the app's own.
  portal: 'Open the customer portal',
  tryAgain: 'Try again with {key}',
  freeSeat: 'Free a seat',
  lostKey: 'Lost your key?',
  back: 'Back',
  recoverTitle: 'Find your key',
  emailLabel: 'Email',
  emailHint: 'The email of your purchase: Polar sends a sign-in code to it.',
  sendCode: 'Send the code',
  codeLabel: 'Code from the email',
  codeHint: 'The 6-character code Polar emailed to {email}. It works once, for 30 minutes.',
  signIn: 'Sign in',
  working: 'One moment…',
  devicesHint: 'The devices using {key}. Free one you no longer use: this device is then activated with the key.',
  activatedOn: 'activated {date}',
  // What else tells a device apart from the others in the list (its row: the label, then these).
  thisDevice: 'this device',
  lastSeen: 'last seen {date}',
  deviceId: 'id …{id}',
  free: 'Free',
  freeing: 'Freeing the seat of {device}…',
  // An empty list says the library's words (the list's `userMessage`, the core's
  // `message::NO_DEVICES`); set `noDevices` (with `{key}`) for the app's own.
  keysHint: 'Your keys for this app. Pick one to activate it on this device.',
  // After a key's display form in key recovery's list (its creation date).
  createdOn: 'created {date}',
  useKey: 'Use',
  accountsHint: 'Several accounts have this email. Pick the one of your purchase: Polar sends the code for it.',
  account: 'Account {n}',
  pickAccount: 'Choose',
  // No key to recover: the library's words (`recover()`'s `userMessage`, the core's
  // `message::NO_KEYS`); set `noKeys` for the app's own.
  // Buying in the app (`checkout`): the window of the checkout, then the key found and activated.
  buy: 'Buy a license',
  buyTitle: 'Buy a license',
  buyPay: 'Pay in the checkout window: this screen goes on once you have paid and that window has closed.',
  openCheckout: 'Open the checkout',
  buyFinding: 'Finding the key you bought…',
  buyAgain: 'Try again',
  // The failures of the sign-in and the lists (polar-license/devices' `code`: a wrong code, an
  // expired sign-in, `invalid_email`, …) are said in the library's words too, the error's
  // `userMessage` (the core's `PortalError::message`); set a code here for the app's own words.
  // A refusal with a reason code (docs/interfaces.md §1) is said in the library's words, its
  // `userMessage` (the core's one sentence and next step, as every face says it); set a code
  // here (`not_found`, `seats_full`, …) for the app's own words in place of them.
  // A failure with no words of the library's (an error from outside it): the core's last resort
  // (`message::UNKNOWN`); set `unknown` (with `{code}`) for the app's own.
  // The locale of dates and durations (default: the element's `lang`, the page's, the browser's).
  locale: '',
});

/** The library's redaction of a key (src/key.rs `redact`). */
export function redactKey(key) {
  const chars = [...String(key ?? '')];
  return chars.length <= 12 ? '****' : `****-${chars.slice(-6).join('')}`;
}

const STYLE = `
:host {
  display: block;
  box-sizing: border-box;
  max-width: var(--polar-gate-width, 28rem);
  padding: var(--polar-gate-padding, 1.25rem);
  /* The system's own sans-serif by default: a page with no font of its own (serif) does not
     change the screen. --polar-gate-font (a font shorthand, or inherit) sets another. */
  font: var(--polar-gate-font, 100% system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif);
  color: var(--polar-gate-color, #1b1b1f);
  background: var(--polar-gate-background, #ffffff);
  border: var(--polar-gate-border, 1px solid #c4c7cf);
  border-radius: var(--polar-gate-radius, 8px);
}
[hidden] { display: none !important; }
* { box-sizing: border-box; }
h2 { margin: 0 0 0.75rem; font-size: var(--polar-gate-title-size, 1.25rem); }
h2:focus { outline: none; }
form { display: grid; gap: var(--polar-gate-gap, 0.5rem); }
label { font-weight: 600; }
input {
  font: inherit;
  padding: 0.5rem 0.625rem;
  color: inherit;
  background: var(--polar-gate-input-background, #ffffff);
  border: var(--polar-gate-input-border, 1px solid #74777f);
  border-radius: var(--polar-gate-radius, 8px);
  font-family: var(--polar-gate-key-font, ui-monospace, monospace);
}
input[aria-invalid='true'] { border-color: var(--polar-gate-danger, #b3261e); }
.hint, dl { color: var(--polar-gate-muted, #44474e); font-size: 0.875rem; margin: 0; }
button, a {
  font: inherit;
  justify-self: start;
  padding: 0.5rem 1rem;
  border-radius: var(--polar-gate-radius, 8px);
  cursor: pointer;
}
.primary {
  color: var(--polar-gate-accent-text, #ffffff);
  background: var(--polar-gate-accent, #0b57d0);
  border: 1px solid var(--polar-gate-accent, #0b57d0);
}
.secondary {
  color: var(--polar-gate-accent, #0b57d0);
  background: transparent;
  border: 1px solid currentColor;
}
a { display: inline-block; padding: 0.5rem 0; color: var(--polar-gate-accent, #0b57d0); }
button[aria-disabled='true'] { cursor: progress; }
:focus-visible { outline: var(--polar-gate-focus, 2px solid #0b57d0); outline-offset: 2px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; margin: 0.75rem 0; font-size: 1rem; }
dt { font-weight: 600; color: var(--polar-gate-color, #1b1b1f); }
dd { margin: 0; overflow-wrap: anywhere; }
.message { margin: 0.75rem 0 0; min-height: 1.25em; }
.message:empty { margin: 0; min-height: 0; }
:host([state='refused']) .message {
  color: var(--polar-gate-danger, #b3261e);
  padding-left: 0.625rem;
  border-left: 3px solid currentColor;
}
:host([state='licensed']) .message { color: var(--polar-gate-success, #146c2e); }
:host([state='licensed'][reason]) .message { color: var(--polar-gate-danger, #b3261e); }
:host([offline]) .message { color: var(--polar-gate-warning, #7a4a00); }
:host([state='free-seat'][reason]) .message, :host([state='recover'][reason]) .message, :host([state='buy'][reason]) .message { color: var(--polar-gate-danger, #b3261e); }
ul { list-style: none; margin: 0; padding: 0; display: grid; gap: 0.5rem; }
li { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; align-items: center; justify-content: space-between; padding: 0.5rem 0; border-top: 1px solid var(--polar-gate-muted, #c4c7cf); }
li > span { flex: 1 1 10rem; }
.detail { display: block; color: var(--polar-gate-muted, #44474e); font-size: 0.875rem; }
.actions { display: flex; flex-wrap: wrap; gap: 0.5rem 1rem; align-items: center; margin-top: 0.75rem; }
`;

const TEMPLATE = `<style>${STYLE}</style>
<section part="container" aria-labelledby="title">
  <h2 part="title" id="title" tabindex="-1"></h2>
  <form part="form" novalidate>
    <label part="label" for="key"></label>
    <input part="input" id="key" name="polar-license-key" type="text" autocomplete="off"
      autocapitalize="off" spellcheck="false" aria-describedby="hint message">
    <p part="hint" class="hint" id="hint"></p>
    <button part="button activate" class="primary" type="submit"></button>
  </form>
  <form part="form sign-in" id="flow" novalidate>
    <p part="hint" class="hint" id="intro"></p>
    <label part="label" for="entry"></label>
    <input part="input entry" id="entry" autocapitalize="off" spellcheck="false" aria-describedby="intro message">
    <button part="button next" class="primary" type="submit"></button>
    <ul part="list"></ul>
  </form>
  <dl part="details"></dl>
  <p part="message" class="message" id="message" role="status" aria-live="polite"></p>
  <div part="actions" class="actions">
    <button part="button deactivate" class="secondary" type="button"></button>
    <button part="button retry" class="primary" type="button"></button>
    <button part="button free-seat" class="secondary" type="button"></button>
    <button part="button lost-key" class="secondary" type="button"></button>
    <button part="button back" class="secondary" type="button"></button>
    <button part="button buy" class="secondary" type="button"></button>
    <a part="link checkout" target="_blank" rel="noopener"></a>
    <a part="link portal" target="_blank" rel="noopener noreferrer"></a>
  </div>
</section>`;

const Base = globalThis.HTMLElement ?? class {};

/**
 * `<polar-license-gate>`: set `client` (or `options`), listen to `polar-license-change`.
 * Attributes: `device-label` (the activation's label), `portal-url` (the customer portal).
 */
export class PolarLicenseGate extends Base {
  #client = null;
  #clientPending = null;
  #key = null;
  #strings = DEFAULT_STRINGS;
  #state = 'empty';
  #reason = null;
  #view = {};
  #message = '';
  #busy = false;
  #els = null;
  #devices = null;
  #devicesPending = null;
  /** The key of the last refusal, kept for "Try again" and "Free a seat" (memory only). */
  #held = null;
  #retry = false;
  /** Why the key of the refusal shown stopped (`{ kind, at, until }`), else `null`. */
  #stopped = null;
  /** Whether the refusal shown offers the customer portal (the core's word). */
  #portal = false;
  #refusal = null;
  #step = 'email';
  #email = '';
  #items = [];
  // The library's words for an empty list (its `userMessage`), shown when #items is empty.
  #empty = '';
  #products = {};
  /** What opens a checkout (`checkout`), else `null`. */
  #checkout = null;
  /** The purchase under way: `{ checkout, url, receipt?, more? }` (memory only). */
  #purchase = null;
  /** The core's words before the code step of a purchase without a session. */
  #buyIntro = '';

  static get observedAttributes() {
    return ['portal-url', 'device-label', 'lang'];
  }

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = TEMPLATE;
    const $ = (s) => root.querySelector(s);
    this.#els = {
      title: $('h2'),
      form: $('form'),
      label: $('label'),
      input: $('input'),
      hint: $('.hint'),
      submit: $('form button'),
      details: $('dl'),
      message: $('.message'),
      deactivate: $('[part~=deactivate]'),
      portal: $('[part~=portal]'),
      actions: $('.actions'),
      flow: $('#flow'),
      intro: $('#intro'),
      entryLabel: $('[for=entry]'),
      entry: $('#entry'),
      next: $('[part~=next]'),
      list: $('ul'),
      retry: $('[part~=retry]'),
      freeSeat: $('[part~=free-seat]'),
      lostKey: $('[part~=lost-key]'),
      back: $('[part~=back]'),
      buy: $('[part~=buy]'),
      checkoutLink: $('[part~=checkout]'),
    };
    this.#els.form.addEventListener('submit', (e) => {
      e.preventDefault();
      const key = this.#els.input.value;
      // Cleared at once: the field never keeps the key once it is submitted.
      this.#els.input.value = '';
      this.activate(key);
    });
    this.#els.deactivate.addEventListener('click', () => this.deactivate());
    // A stopped key that was checked is checked again (no new activation); else activated.
    this.#els.retry.addEventListener('click', () =>
      this.#retry === 'check' ? this.refresh() : this.#retry === 'buy' ? this.#bought(this.#purchase?.more ?? {}) : this.activate(this.#held),
    );
    this.#els.freeSeat.addEventListener('click', () => this.freeSeat());
    this.#els.lostKey.addEventListener('click', () => this.recoverKey());
    this.#els.buy.addEventListener('click', () => this.buy());
    this.#els.back.addEventListener('click', () => this.#back());
    this.#els.flow.addEventListener('submit', (e) => {
      e.preventDefault();
      this.#next();
    });
  }

  connectedCallback() {
    // A property the page set before this module defined the element (an own property that
    // hides the accessor): set again through it.
    for (const name of ['strings', 'options', 'client', 'devices', 'products', 'checkout']) {
      if (Object.hasOwn(this, name)) {
        const value = this[name];
        delete this[name];
        this[name] = value;
      }
    }
    this.#render();
    if (this.#client && this.#state === 'empty' && !this.#busy) this.refresh();
  }

  attributeChangedCallback() {
    this.#render();
  }

  /** The client: a `LicenseClient`, or an object with its `activate`, `check`, `deactivate` (and optionally `status`, `rememberedKey`). */
  get client() {
    return this.#client;
  }
  set client(client) {
    this.#client = client ?? null;
    this.#clientPending = null;
    this.#reset();
    if (this.isConnected && this.#client) this.refresh();
  }

  /** Options of a `LicenseClient` (`rememberKeys` on by default): the client entry is loaded then. */
  set options(options) {
    this.#client = null;
    this.#reset();
    this.#clientPending = import('./browser.js').then(
      ({ LicenseClient }) => {
        this.#client = new LicenseClient({ rememberKeys: true, ...options });
        return this.#client;
      },
      // The client entry could not be loaded (a CSP, a bundle without it): said as load_error.
      (e) => Promise.reject(Object.assign(new Error(`polar-license: ${e}`), { code: 'load_error' })),
    );
    // Free a seat and key recovery through polar-license/devices, loaded on their first use.
    this.#devices = null;
    this.#devicesPending = () => import('./devices.js').then(({ Devices }) => (this.#devices = new Devices(options)));
    // "Lost your key?" shown now: the refresh below may end with nothing to change.
    this.#render();
    if (this.isConnected) this.refresh();
  }

  /**
   * "Free a seat" and "Lost your key?": a `Devices` of polar-license/devices (or an object with
   * its `requestCode`, `signIn`, `list`, `free`, `recover`, `signedIn` and, to buy, `buy`); made from `options`
   * when those are set. Without it the screen offers neither.
   */
  get devices() {
    return this.#devices;
  }
  set devices(devices) {
    this.#devices = devices ?? null;
    this.#devicesPending = null;
    this.#render();
  }

  /**
   * The names of the app's products by their license-key benefit's id (`{ '<benefit id>':
   * 'Pro' }`): key recovery's list shows them beside each key (Polar's key list names a key's
   * benefit by its id only).
   */
  get products() {
    return this.#products;
  }
  set products(products) {
    this.#products = Object.freeze({ ...(products ?? {}) });
    this.#render();
  }

  /**
   * Buying in the app (issue #80): what opens a checkout, a function resolving to the checkout's
   * URL (`…/checkout/polar_c_…`, made for this purchase by the seller's relay or backend with
   * the app's metadata, `POST /v1/checkouts/`). With it (and `devices`, or `options`) the
   * screen offers "Buy a license". A checkout link cannot be given here: a page cannot read the
   * redirect Polar answers it with (fetch's opaque redirect), so it would never learn the
   * checkout to follow. It is called with the gate's `devices`: `(devices) =>
   * devices.openRelayCheckout(productId, { metadata })` has the seller's relay make one.
   */
  get checkout() {
    return this.#checkout;
  }
  set checkout(checkout) {
    this.#checkout = typeof checkout === 'function' ? checkout : null;
    this.#render();
  }

  /** Another client: nothing known here of the last one's key. */
  #reset() {
    this.#key = null;
    this.#held = null;
    if (this.#state !== 'empty' || this.#message) this.#set('empty');
  }

  /** The app's strings over the English ones (one object; any key of `DEFAULT_STRINGS`). */
  get strings() {
    return this.#strings;
  }
  set strings(strings) {
    this.#strings = Object.freeze({ ...DEFAULT_STRINGS, ...(strings ?? {}) });
    this.#render();
  }

  /** `empty`, `checking`, `activating`, `licensed`, `refused`, `deactivating`, `free-seat`, `recover` or `buy`. */
  get state() {
    return this.#state;
  }

  /** The reason code of the last refusal (docs/interfaces.md §1), else `null`. */
  get reason() {
    return this.#reason;
  }

  /** With a refusal through the seller's relay: why the key stopped (`{ kind, at, until }`). */
  get stopped() {
    return this.#stopped;
  }

  async #ready() {
    return this.#client ?? (this.#clientPending ? await this.#clientPending : null);
  }

  /**
   * Checks the key activated here, else the client's remembered key (its `rememberedKey()`, or,
   * for a client without that method, its `check()` with no key: an IPC bridge to a main
   * process that remembers the key, so the whole key never reaches the page); `empty` without one.
   */
  async refresh() {
    if (this.#busy) return;
    this.#held = null;
    const client = await this.#ready().catch((e) => this.#fail(e, null));
    if (!client) return;
    let key = this.#key;
    const remembers = typeof client.rememberedKey === 'function';
    if (!key && remembers) key = await client.rememberedKey().catch(() => null);
    if (!key && remembers) {
      if (this.#state === 'checking') this.#set('empty');
      return;
    }
    this.#key = key ?? null;
    this.#busy = true;
    this.#set('checking', { message: this.#t('checking') });
    try {
      const result = await (key ? client.check(key) : client.check());
      this.#licensed(result, null);
    } catch (e) {
      // No key remembered by the client: nothing to say yet.
      if (!key && codeOf(e) === 'invalid_input' && (e?.field ?? 'key') === 'key') this.#set('empty');
      else {
        // A key that may license again (a paused subscription resumed): "Try again" checks it.
        if (key && stopOf(e)?.again) [this.#held, this.#retry] = [key, 'check'];
        await this.#fail(e, key);
      }
    } finally {
      this.#idle();
    }
  }

  /** Activates `key` on this device (what the form does); resolves when the state is settled. */
  async activate(key) {
    if (this.#busy) return;
    const client = await this.#ready().catch((e) => this.#fail(e, null));
    if (!client) return;
    const text = String(key ?? '').trim();
    const focused = this.#hasFocus();
    this.#busy = true;
    this.#set('activating', { message: this.#t('activating', { key: redactKey(text) }) });
    try {
      const label = this.getAttribute('device-label') || defaultLabel();
      const activated = await client.activate(text, { label });
      this.#key = text;
      this.#held = null;
      // An activation is a verdict: this check answers from the cache, with no request.
      const result = await client.check(text);
      this.#licensed(result, activated?.activation ?? null);
      if (focused) this.#els.title.focus();
    } catch (e) {
      // Kept (in memory) when the library calls the refusal unverified, or at the limit.
      this.#retry = e?.kind === 'unverified';
      this.#held = this.#retry || codeOf(e) === 'activation_limit' ? text : null;
      await this.#fail(e, text);
      this.#refusal = { reason: this.#reason, stopped: this.#stopped, message: this.#message, portal: this.#portal };
      if (focused) this.#els.input.focus();
    } finally {
      this.#idle();
    }
  }

  /** Deactivates this device (frees its seat) and forgets the key here. */
  async deactivate() {
    const client = this.#client;
    const licensed = this.#state === 'licensed';
    if (this.#busy || !client || !(this.#key || licensed)) return;
    this.#held = null;
    const focused = this.#hasFocus();
    this.#busy = true;
    const shown = { view: this.#view };
    this.#set('deactivating', { ...shown, message: this.#t('deactivating') });
    try {
      // Without a key known here: the client's remembered one (an IPC bridge's main process).
      const done = await (this.#key ? client.deactivate(this.#key) : client.deactivate());
      this.#key = null;
      this.#set('empty', { message: this.#said('deactivated', done) });
      if (focused) this.#els.input.focus();
    } catch (e) {
      // Still licensed here: say why the seat could not be freed.
      this.#set('licensed', { ...shown, reason: codeOf(e), message: await this.#sentence(e, this.#key) });
    } finally {
      this.#idle();
    }
  }

  /** The action has ended: nothing shown busy any more (aria-busy, aria-disabled, the cursor). */
  #idle() {
    this.#busy = false;
    this.#render();
  }

  /** "Free a seat" (after the activation limit, the refused key kept): sign in, list, free one. */
  freeSeat() {
    return this.#held ? this.#open('free-seat') : Promise.resolve();
  }

  /** "Lost your key?": sign in, pick one of the customer's keys, activate it here. */
  recoverKey() {
    return this.#open('recover');
  }

  async #open(state) {
    if (this.#busy) return;
    const focused = this.#hasFocus();
    const devices = await this.#ready$();
    if (!devices) return;
    this.#step = 'email';
    this.#items = [];
    this.#set(state);
    if (devices.signedIn) await this.#work(() => this.#show());
    if (focused) (this.#step === 'list' ? this.#els.title : this.#els.entry).focus();
  }

  /**
   * "Buy a license": opens the checkout in a window of its own and, once the buyer has paid,
   * activates the key bought here (no key typed). The steps are the core's purchase machine
   * (polar-license/devices' `buy`); this screen carries what it asks for: the URL the buyer
   * landed on after paying (its customer session, when the window reaches a page of this
   * origin), else the code Polar emails to the checkout's address, and shows its words.
   */
  async buy() {
    if (this.#busy || !this.#checkout) return;
    // Opened inside the click (a popup blocker lets only those through), its page set below.
    let win = null;
    try {
      win = globalThis.open?.('', '_blank') ?? null;
    } catch {}
    const devices = await this.#ready$();
    if (!devices) return win?.close();
    this.#step = 'pay';
    this.#purchase = null;
    this.#retry = false;
    this.#set('buy');
    let url = null;
    // Called with the gate's devices, whose `openRelayCheckout` asks the seller's relay.
    if (!(await this.#work(async () => (url = String(await this.#checkout(devices)))))) return win?.close();
    this.#purchase = { checkout: url, url: /^https?:/.test(url) ? url : null };
    if (win && this.#purchase.url) win.location.href = this.#purchase.url;
    this.#set('buy', { message: this.#t('buyPay') });
    if (this.#hasFocus()) this.#els.title.focus();
    const landed = await landing(win);
    if (this.#state !== 'buy' || this.#purchase?.checkout !== url) return;
    await this.#bought(landed ? { successUrl: landed } : {});
  }

  /** The purchase machine run with `more` (the success URL, or the receipt once signed in). */
  async #bought(more) {
    const purchase = this.#purchase;
    const client = await this.#ready();
    if (!purchase || !client) return;
    purchase.more = more;
    this.#step = 'find';
    this.#retry = false;
    this.#set('buy');
    const label = this.getAttribute('device-label') || defaultLabel();
    // The client as buy() takes it (an IPC bridge may remember keys, or not).
    const activating = { activate: (key, options) => client.activate(key, options), rememberKey: (key) => client.rememberKey?.(key) };
    let end = null;
    const ok = await this.#work(async () => (end = await this.#devices.buy(purchase.checkout, { ...more, client: activating, label })), this.#t('buyFinding'));
    if (this.#purchase !== purchase) return;
    if (!ok) {
      // The core's failure (key_issuing: Polar is still issuing the key): "Try again" runs it again.
      this.#retry = 'buy';
      return this.#render();
    }
    if (end.signIn) {
      // No session from Polar: the code it is emailing to the checkout's address.
      purchase.receipt = end.signIn;
      this.#email = end.signIn.email ?? '';
      this.#buyIntro = [end.signIn.userMessage, end.signIn.nextStep].filter(Boolean).join(' ');
      this.#step = 'code';
      this.#set('buy');
      if (this.#hasFocus()) this.#els.entry.focus();
      return;
    }
    this.#key = end.key.key;
    this.#held = null;
    this.#purchase = null;
    const result = await client.check(this.#key).catch((e) => this.#fail(e, this.#key));
    const focused = this.#hasFocus();
    if (result) this.#licensed(result, end.activation?.activation ?? null);
    if (focused) this.#els.title.focus();
  }

  async #ready$() {
    try {
      return this.#devices ?? (await this.#devicesPending?.()) ?? null;
    } catch (e) {
      await this.#fail(e, null);
      return null;
    }
  }

  #back() {
    if (this.#busy) return;
    this.#purchase = null;
    const r = this.#refusal;
    if (this.#held && r) this.#set('refused', r);
    else this.#set('empty');
    this.#els.input.focus();
  }

  /** The flow's form: the email, then the code. */
  async #next() {
    const entry = this.#els.entry;
    const value = entry.value.trim();
    const d = this.#devices;
    if (this.#busy || !d || this.#step === 'list' || this.#step === 'customer') return;
    if (this.#state === 'buy') {
      // The code of a purchase without a session: signed in, the machine again with its receipt.
      entry.value = '';
      if (this.#step === 'code' && (await this.#work(() => d.signIn(value)))) await this.#bought({ receipt: this.#purchase?.receipt });
      else entry.focus();
      return;
    }
    if (this.#step === 'email') {
      this.#email = value;
      if (await this.#work(() => d.requestCode(value))) {
        this.#step = 'code';
        entry.value = '';
        this.#set(this.#state);
        entry.focus();
      }
    } else {
      entry.value = '';
      if (await this.#work(() => d.signIn(value).then(() => this.#show()))) this.#els.title.focus();
      else entry.focus();
    }
  }

  /** The list: the kept key's devices, or the customer's keys. */
  async #show() {
    const d = this.#devices;
    const listed = this.#state === 'free-seat' ? await d.list(this.#held) : await d.recover();
    this.#items = listed?.devices ?? listed;
    this.#empty = listed?.userMessage ?? '';
    this.#step = 'list';
    this.#set(this.#state);
  }

  /** A device freed then the kept key activated, or a recovered key activated. */
  async #pick(item) {
    if (this.#step === 'customer') {
      // One of the customers with this email (Polar's customer_selection_required): its code.
      if (await this.#work(() => this.#devices.requestCode(this.#email, { customerId: item.id }))) {
        this.#step = 'code';
        this.#set(this.#state);
        this.#els.entry.focus();
      }
      return;
    }
    const key = this.#state === 'free-seat' ? this.#held : item.key;
    if (this.#state === 'free-seat') {
      const freeing = this.#t('freeing', { device: item.label });
      if (!(await this.#work(() => this.#devices.free(key, item.id), freeing))) return;
    }
    this.#els.title.focus();
    await this.activate(key);
  }

  /** Runs a step of the flow, busy meanwhile; a failure said in the flow. Resolves to success. */
  async #work(step, message = this.#t('working')) {
    const state = this.#state;
    this.#busy = true;
    this.#set(state, { message });
    try {
      await step();
      if (this.#state === state && this.#message === message) this.#set(state);
      return true;
    } catch (e) {
      const code = codeOf(e);
      if (code === 'session_expired' || code === 'not_signed_in') this.#step = 'email';
      if (code === 'customer_selection_required' && Array.isArray(e.customers)) {
        this.#items = e.customers;
        this.#step = 'customer';
        this.#set(state);
        return false;
      }
      const name = code === 'invalid_input' && `invalid_${e.field}` in this.#strings ? `invalid_${e.field}` : code;
      this.#set(state, { reason: code, message: await this.#sentence({ ...e, code: name, message: e?.message, retryAfter: e?.retryAfter ?? undefined }, this.#held) });
      return false;
    } finally {
      this.#idle();
    }
  }

  #licensed(result, activation) {
    const license = result?.license ?? {};
    const sub = license.subscription;
    const customer = license.customer ?? {};
    const when = [];
    if (sub && (sub.cancelAtPeriodEnd || sub.endsAt)) when.push(['ends', sub.endsAt ?? sub.currentPeriodEnd]);
    else if (sub?.currentPeriodEnd) when.push(['renews', sub.currentPeriodEnd]);
    else if (license.expiresAt) when.push(['expires', license.expiresAt]);
    const view = {
      key: this.#key ? redactKey(this.#key) : (license.displayKey ?? null),
      holder: license.member?.email ?? customer.name ?? customer.email ?? null,
      until: when[0] ? { kind: when[0][0], at: when[0][1] } : null,
      device: (activation ?? result?.activation)?.label ?? null,
      source: result?.source ?? 'online',
      graceRemaining: result?.graceRemaining ?? null,
      offline: result?.source === 'cache' && result?.reason != null,
    };
    const name = view.offline ? 'offlineGrace' : 'licensed';
    const message = this.#said(name, result, { grace: this.#duration(view.graceRemaining ?? 0) });
    this.#set('licensed', { view, message });
  }

  async #fail(error, key) {
    const code = codeOf(error);
    // Whether the customer portal helps is the core's to say (the error's `portal`).
    const portal = error?.portal === true;
    this.#set('refused', { reason: code, stopped: stopOf(error), message: await this.#sentence(error, key), portal });
    return null;
  }

  async #sentence(error, key) {
    const code = codeOf(error);
    let wait = Number.isFinite(error?.retryAfter) ? error.retryAfter : null;
    if (code === 'rate_limited' && wait == null && key && typeof this.#client?.status === 'function') {
      // A page cannot read Polar's retry-after: the client's block says how long it waits.
      const status = await this.#client.status(key).catch(() => null);
      if (status?.blockedUntil && status.now) wait = Math.max(1, status.blockedUntil - status.now);
    }
    const has = (c) => Object.hasOwn(this.#strings, c) && c !== 'unknown' && c !== 'locale';
    const stop = stopOf(error);
    const values = { key: redactKey(key), code, wait: this.#duration(wait ?? 60) };
    if (stop) {
      // Why the key stopped says more than the reason (Polar's same 404 for each): the core's
      // sentence for it (the refusal's userMessage, as every face says it), unless the app
      // gave its own words (`stopped_<kind>`, and `_until`/`_at` for a known date).
      const name = `stopped_${stop.kind}`;
      const dated = { paused: ['until', stop.until], canceled: ['at', stop.at] }[stop.kind];
      const which = dated?.[1] != null && has(`${name}_${dated[0]}`) ? `${name}_${dated[0]}` : name;
      for (const k of ['at', 'until']) if (stop[k] != null) values[k] = this.#date(stop[k] * 1000);
      if (has(which)) return this.#t(which, values);
      if (typeof error?.userMessage === 'string' && error.userMessage) return error.userMessage;
    }
    if (has(code)) return this.#t(code, values);
    // A failure of polar-license/devices: the core's words for it (a portal step's
    // `userMessage`), or a purchase's sentence and its next step (key_issuing: Polar is still
    // issuing the key, never "wrong key").
    if (error?.name === 'DevicesError' && typeof error.userMessage === 'string' && error.userMessage) return error.userMessage;
    if (typeof error?.nextStep === 'string' && error.name === 'DevicesError') return `${error.message} ${error.nextStep}`;
    // The library's words for the reason (the core's, every face's).
    if (typeof error?.userMessage === 'string' && error.userMessage) return error.userMessage;
    // A failure of polar-license/devices without a sentence of its own: its reason's.
    if (has(error?.reason)) return this.#t(error.reason, values);
    return this.#said('unknown', null, values);
  }

  #set(state, { reason = null, stopped = null, message = '', view = {}, portal = false } = {}) {
    this.#state = state;
    this.#reason = reason;
    this.#stopped = stopped;
    this.#portal = portal;
    this.#message = message;
    this.#view = state === 'licensed' || state === 'deactivating' ? view : {};
    this.#render();
    const flow = state === 'free-seat' || state === 'recover' || state === 'buy';
    const detail = {
      state,
      ...(flow ? { step: this.#step } : {}),
      reason,
      stopped,
      licensed: state === 'licensed',
      message,
      ...(state === 'licensed' ? { license: { ...this.#view } } : {}),
    };
    this.dispatchEvent(new CustomEvent('polar-license-change', { detail, bubbles: true, composed: true }));
  }

  #render() {
    const e = this.#els;
    if (!e) return;
    const state = this.#state;
    const licensedView = state === 'licensed' || state === 'deactivating';
    this.setAttribute('state', state);
    if (this.#reason) this.setAttribute('reason', this.#reason);
    else this.removeAttribute('reason');
    if (this.#stopped) this.setAttribute('stopped', this.#stopped.kind);
    else this.removeAttribute('stopped');
    this.toggleAttribute('offline', licensedView && !!this.#view.offline);
    const buying = state === 'buy';
    const flow = state === 'free-seat' || state === 'recover' || (buying && this.#step === 'code');
    const busy = this.#busy || state === 'activating' || state === 'checking' || state === 'deactivating';
    e.title.textContent = this.#t(licensedView ? 'licensedTitle' : state === 'free-seat' ? 'freeSeat' : state === 'recover' ? 'recoverTitle' : buying ? 'buyTitle' : 'title');
    e.label.textContent = this.#t('keyLabel');
    e.hint.textContent = this.#t('keyHint');
    e.submit.textContent = this.#t('activate');
    e.deactivate.textContent = this.#t('deactivate');
    e.portal.textContent = this.#t('portal');
    e.form.hidden = licensedView || flow || buying;
    const held = redactKey(this.#held);
    const open = state === 'empty' || state === 'refused';
    const devices = !!(this.#devices || this.#devicesPending);
    e.retry.textContent = this.#t('tryAgain', { key: held });
    e.freeSeat.textContent = this.#t('freeSeat');
    e.lostKey.textContent = this.#t('lostKey');
    e.back.textContent = this.#t('back');
    e.retry.hidden = !(state === 'refused' && this.#retry && this.#held);
    e.freeSeat.hidden = !(devices && state === 'refused' && this.#held && this.#reason === 'activation_limit');
    e.lostKey.hidden = !(devices && open);
    e.back.hidden = !(flow || buying);
    e.buy.textContent = this.#t('buy');
    e.buy.hidden = !(this.#checkout && devices && open);
    e.checkoutLink.textContent = this.#t('openCheckout');
    // Also while the purchase is followed: the buyer whose window a popup blocker stopped opens it here.
    e.checkoutLink.hidden = !(buying && this.#step !== 'code' && !this.#reason && this.#purchase?.url);
    if (!e.checkoutLink.hidden) e.checkoutLink.href = this.#purchase.url;
    e.retry.hidden = !(buying ? this.#retry === 'buy' : state === 'refused' && this.#retry && this.#held);
    if (buying) e.retry.textContent = this.#t('buyAgain');
    for (const b of [e.retry, e.freeSeat, e.lostKey, e.back, e.next, e.buy]) setBusy(b, busy);
    e.flow.hidden = !flow;
    if (flow) {
      const customer = this.#step === 'customer';
      const list = this.#step === 'list' || customer;
      const email = this.#step === 'email';
      e.entryLabel.hidden = e.entry.hidden = e.next.hidden = list;
      e.entry.readOnly = busy;
      e.entry.type = email ? 'email' : 'text';
      e.entry.autocomplete = email ? 'email' : 'one-time-code';
      e.entryLabel.textContent = this.#t(email ? 'emailLabel' : 'codeLabel');
      e.next.textContent = this.#t(email ? 'sendCode' : 'signIn');
      const picking = state === 'free-seat';
      e.intro.textContent = buying
        ? this.#buyIntro
        : customer
        ? this.#t('accountsHint')
        : list
        ? this.#items.length
          ? this.#t(picking ? 'devicesHint' : 'keysHint', { key: held })
          : this.#said(picking ? 'noDevices' : 'noKeys', { userMessage: this.#empty }, { key: held })
        : this.#t(email ? 'emailHint' : 'codeHint', { email: this.#email });
      e.list.hidden = !list;
      const rows = list && !customer ? (picking ? this.#deviceRows(this.#items) : this.#keyRows(this.#items)) : [];
      e.list.replaceChildren(
        ...(list ? this.#items : []).map((item, i) => {
          const li = document.createElement('li');
          const text = document.createElement('span');
          text.id = `item-${i}`;
          if (customer) text.textContent = item.name ?? this.#t('account', { n: i + 1 });
          else {
            // The name, then (on a line of its own) what tells it from the others.
            const [name, detail] = rows[i];
            const more = document.createElement('span');
            more.className = 'detail';
            more.textContent = detail;
            text.append(name, ...(detail ? [' ', more] : []));
          }
          const pick = document.createElement('button');
          pick.type = 'button';
          pick.className = 'secondary';
          pick.setAttribute('part', 'button pick');
          pick.setAttribute('aria-describedby', text.id);
          pick.textContent = this.#t(customer ? 'pickAccount' : picking ? 'free' : 'useKey');
          setBusy(pick, busy);
          pick.addEventListener('click', () => this.#busy || this.#pick(item));
          li.append(text, pick);
          return li;
        }),
      );
    }
    e.input.readOnly = busy;
    e.input.setAttribute('aria-invalid', state === 'refused' ? 'true' : 'false');
    setBusy(e.submit, busy);
    setBusy(e.deactivate, busy);
    e.title.parentElement.setAttribute('aria-busy', busy ? 'true' : 'false');
    e.deactivate.hidden = !licensedView;
    const portal = this.getAttribute('portal-url');
    e.portal.hidden = !portal || !(licensedView || this.#portal);
    e.actions.hidden = [e.deactivate, e.portal, e.retry, e.freeSeat, e.lostKey, e.back, e.buy, e.checkoutLink].every((b) => b.hidden);
    if (portal) e.portal.href = portal;
    else e.portal.removeAttribute('href');
    e.details.replaceChildren();
    e.details.hidden = !licensedView;
    if (licensedView) {
      const v = this.#view;
      const row = (name, value) => {
        if (value == null || value === '') return;
        const dt = document.createElement('dt');
        const dd = document.createElement('dd');
        dt.textContent = this.#t(name);
        dd.textContent = value;
        e.details.append(dt, dd);
      };
      row('holder', v.holder);
      row('key', v.key);
      if (v.until) row(v.until.kind, this.#date(v.until.at));
      row('device', v.device);
    }
    if (e.message.textContent !== this.#message) e.message.textContent = this.#message;
  }

  /**
   * Each device's row (its name and its detail), told apart from the others: its label, this
   * machine marked, its platform and when it was last seen (when the list says), its
   * activation date (with the time when another row shares the day) and, for rows still
   * alike, the end of its activation id.
   */
  #deviceRows(devices) {
    const when = this.#dates(devices.map((d) => d.activatedAt));
    const rows = devices.map((d, i) => {
      const parts = [];
      if (d.thisMachine === true) parts.push(this.#t('thisDevice'));
      if (typeof d.platform === 'string' && d.platform) parts.push(d.platform);
      if (Number.isFinite(d.lastSeen)) parts.push(this.#t('lastSeen', { date: this.#date(d.lastSeen * 1000, true) }));
      parts.push(this.#t('activatedOn', { date: when[i] }));
      return [String(d.label ?? ''), parts];
    });
    const text = ([label, parts]) => [label, `(${parts.join(', ')})`];
    const seen = rows.map((row) => text(row).join(' '));
    return rows.map((row, i) => {
      if (seen.some((t, j) => j !== i && t === seen[i])) row[1].push(this.#t('deviceId', { id: String(devices[i].id ?? '').slice(-6) }));
      return text(row);
    });
  }

  /** Each recoverable key's row (its name and its detail): its display form, its product
   * (`products`) and its creation date (with the time when another key shares the day). */
  #keyRows(keys) {
    const when = this.#dates(keys.map((k) => k.createdAt));
    return keys.map((k, i) => {
      const product = Object.hasOwn(this.#products, k.benefitId ?? '') ? this.#products[k.benefitId] : null;
      const parts = [product, when[i] && this.#t('createdOn', { date: when[i] })].filter(Boolean);
      return [String(k.displayKey), parts.length ? `(${parts.join(', ')})` : ''];
    });
  }

  /** Unix seconds as dates, with the time for those that share their day with another. */
  #dates(seconds) {
    const days = seconds.map((s) => (Number.isFinite(s) ? this.#date(s * 1000) : null));
    return seconds.map((s, i) => (days[i] && days.some((d, j) => j !== i && d === days[i]) ? this.#date(s * 1000, true) : days[i]));
  }

  /**
   * The app's own words for `name` when it set them (`gate.strings`), else the library's: the
   * `userMessage` of the answer (`from`), the core's sentence for it, or the core's words for
   * `name` where the answer has none (issue #80: the screen keeps no words of its own for what
   * happened).
   */
  #said(name, from, values = {}) {
    if (Object.hasOwn(this.#strings, name)) return this.#t(name, values);
    return typeof from?.userMessage === 'string' && from.userMessage ? from.userMessage : (CORE_WORDS[name] ?? '');
  }

  #t(name, values = {}) {
    const text = String(this.#strings[name] ?? DEFAULT_STRINGS[name] ?? name);
    return text.replace(/\{(\w+)\}/g, (all, k) => (k in values ? String(values[k]) : all));
  }

  #locale() {
    return this.#strings.locale || this.closest?.('[lang]')?.getAttribute('lang') || undefined;
  }

  #date(at, time = false) {
    const d = new Date(at);
    if (Number.isNaN(d.getTime())) return String(at);
    try {
      return new Intl.DateTimeFormat(this.#locale(), time ? { dateStyle: 'long', timeStyle: 'short' } : { dateStyle: 'long' }).format(d);
    } catch {
      return time ? d.toString() : d.toDateString();
    }
  }

  #duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const [n, unit] =
      s >= 2 * 86400 ? [Math.floor(s / 86400), 'day'] : s >= 2 * 3600 ? [Math.floor(s / 3600), 'hour'] : s >= 60 ? [Math.floor(s / 60), 'minute'] : [s, 'second'];
    try {
      return new Intl.NumberFormat(this.#locale(), { style: 'unit', unit, unitDisplay: 'long' }).format(n);
    } catch {
      return `${n} ${unit}${n === 1 ? '' : 's'}`;
    }
  }

  /** Whether the focus is inside the gate: only then does it move the focus (never stealing it from the page). */
  #hasFocus() {
    return this.shadowRoot.activeElement != null;
  }
}

/**
 * The URL the checkout's window lands on once paid: the first page of this origin it shows
 * (the seller's success URL, where Polar adds `customer_session_token`), the window then
 * closed; `null` when there is no window or it is closed first (a success URL elsewhere: the
 * purchase goes on without a session). A window on Polar's origin cannot be read: it is waited
 * for.
 */
function landing(win) {
  if (!win) return Promise.resolve(null);
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      let href = null;
      try {
        if (win.closed) return done(null);
        href = win.location.href;
      } catch {
        return;
      }
      if (href && href !== 'about:blank' && new URL(href).origin === globalThis.location?.origin) {
        win.close();
        done(href);
      }
    }, 250);
    const done = (value) => {
      clearInterval(timer);
      resolve(value);
    };
  });
}

function setBusy(button, busy) {
  if (busy) button.setAttribute('aria-disabled', 'true');
  else button.removeAttribute('aria-disabled');
}

/** A refusal's `stopped` (the seller's relay), when it names a kind. */
function stopOf(error) {
  const s = error?.stopped;
  return typeof s?.kind === 'string' ? { kind: s.kind, at: s.at ?? null, until: s.until ?? null, again: s.again === true } : null;
}

function codeOf(error) {
  return typeof error?.code === 'string' ? error.code : 'unknown';
}

function defaultLabel() {
  const nav = globalThis.navigator;
  const platform = nav?.userAgentData?.platform || nav?.platform || '';
  return platform ? `Browser on ${platform}`.slice(0, 100) : 'Browser';
}

if (globalThis.customElements && !customElements.get(TAG)) customElements.define(TAG, PolarLicenseGate);
