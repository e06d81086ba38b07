// polar-license/devices (issue #64): out of activations, sign in with the code Polar emails,
// list the key's devices (this machine's marked), free one by id, then activate here.
//
// The steps and their rules are the core's (polar_license::portal, in its own wasm,
// polar_license_devices_bg.wasm, loaded on the first call), each a machine of the package's one
// step protocol: the package's one drive loop (drive.js) sends the requests the wasm builds over
// `fetch` and hands the answers back. The default entry carries none of it.
// The session lives in this object's memory (a private field) for its hour: never stored,
// never logged.
import init, * as core from './polar_license_devices.js';
import { drive, wasmLoader } from './drive.js';

/** A typed failure: `code` is the CLI's `portal_error` (`session_expired`, …). */
export class DevicesError extends Error {
  constructor(error) {
    super(error.message);
    this.name = 'DevicesError';
    this.code = error.code;
    this.reason = error.reason ?? null;
    if (error.field !== undefined) this.field = error.field;
    if (error.retryAfter !== undefined) this.retryAfter = error.retryAfter;
    if (error.customers !== undefined) this.customers = error.customers;
    if (error.status !== undefined) this.status = error.status;
    // The core's words (`PortalError::message`, a purchase's failures: `key_issuing`, …), as
    // every face says them: the sentence and the next step after it.
    if (error.userMessage !== undefined) this.userMessage = error.userMessage;
    if (error.nextStep !== undefined) this.nextStep = error.nextStep;
  }
}

/** The module's wasm, loaded on the first call and once. */
const load = wasmLoader(new URL('./polar_license_devices_bg.wasm', import.meta.url), init, core, (why) =>
  new DevicesError({ code: 'load_error', reason: 'load_error', message: `polar-license/devices: its wasm did not load: ${why}; copy polar_license_devices_bg.wasm beside your bundle` }),
);

/** The door a `LicenseClient` keeps for this module's follow (license.js). */
const DRIVE = Symbol.for('polar-license.drive');

const TIMEOUT_MS = 30000;
/** The most of an answer read: Polar's are a few KB; a page of 100 keys under 200 KB. */
const MAX_BODY = 4 * 1024 * 1024;

/** The devices of a key, and the sign-in that lists them. */
export class Devices {
  #options;
  #settings = null;
  #fetch;
  #timeout;
  #session = null;

  /**
   * `options`: `organizationId`, and `baseUrl` or `server` (`'sandbox'`), as the client's;
   * `portalUrl` (where Polar's portal and checkouts are when `baseUrl` is not Polar: in signed
   * mode `baseUrl` is the relay); `relay` (the seller's relay's URL: `list` asks it when not
   * signed in, issue #64, and `openRelayCheckout` asks it for a checkout; in signed mode,
   * `relayKeys` given, the relay at `baseUrl` without it); `fetch` (default: the global one),
   * `timeoutMs` (default 30 s). The options of a `LicenseClient` are taken as they are (the
   * gate passes its `options` on); the others are ignored.
   */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'options', message: 'options must be an object' });
    const { organizationId, baseUrl, server, portalUrl, relay, relayKeys, fetch: fetchFn, timeoutMs } = options;
    for (const [name, value] of [['organizationId', organizationId], ['baseUrl', baseUrl], ['server', server], ['portalUrl', portalUrl], ['relay', relay]]) {
      if (value !== undefined && typeof value !== 'string') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: name, message: `${name} must be a string` });
    }
    if (fetchFn !== undefined && typeof fetchFn !== 'function') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'fetch', message: 'fetch must be a function called like the global fetch' });
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'timeoutMs', message: 'timeoutMs must be a positive number' });
    // The options as the wasm's `Settings` takes them, made once on the first call (it parses
    // no JSON of its own): the organization and servers, and the seller's relay (issue #64:
    // without a session, `list` asks it), the one named, else in signed mode the base URL: the
    // core picks (`known_relay`), given both.
    this.#options = [organizationId ?? '', baseUrl, server, portalUrl, relay, relayKeys !== undefined && relayKeys !== null && relayKeys.length > 0];
    this.#fetch = fetchFn ?? ((...a) => globalThis.fetch(...a));
    this.#timeout = timeoutMs ?? TIMEOUT_MS;
  }

  /** Whether a session is held (signed in, and not signed out or told expired since). */
  get signedIn() {
    return this.#session !== null;
  }

  /**
   * Runs `step` (one of the module's machines, made by `make(core, settings)`) through the
   * package's one drive loop, and frees it: its end's value, or a thrown DevicesError (a
   * session Polar says has expired is forgotten).
   */
  async #run(make) {
    const core = await load();
    this.#settings ??= new core.Settings(...this.#options);
    const step = make(core, this.#settings);
    try {
      const { done } = await drive(step.start(), (given, body) => step.give(JSON.stringify(given), body), {
        fetch: this.#fetch,
        timeout: this.#timeout,
        maxBody: MAX_BODY,
        fail: (code, message) => new DevicesError({ code, reason: code, message }),
      });
      if (done.error) {
        if (done.error.code === 'session_expired') this.#session = null;
        throw new DevicesError(done.error);
      }
      return done;
    } finally {
      step.free();
    }
  }

  /**
   * Asks Polar to email a 6-character code to `email` (30 minutes, single use). Resolves
   * whether or not the email is a customer's (Polar does not say). `customerId`: one of a
   * `customer_selection_required` error's `customers`.
   */
  async requestCode(email, { customerId } = {}) {
    if (typeof email !== 'string') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'email', message: 'email must be a string' });
    if (customerId !== undefined && typeof customerId !== 'string') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'customer_id', message: 'customerId must be a string' });
    await this.#run((c, s) => c.Exchange.requestCode(s, email, customerId));
  }

  /** Signs in with the emailed code (any case): the session is held here for its hour. */
  async signIn(code) {
    if (typeof code !== 'string') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'code', message: 'code must be a string' });
    this.#session = (await this.#run((c, s) => c.Exchange.signIn(s, code))).session;
  }

  /** Forgets the session. */
  signOut() {
    this.#session = null;
  }

  /**
   * The devices of `key`, oldest first, `activationId` (this machine's, from a check's
   * `activationId`) marked `thisMachine`: `{ keyId, limitActivations, devices: [{ id, label,
   * activatedAt (unix seconds), thisMachine, platform, lastSeen }] }` (`platform`: what the
   * activation's meta records, e.g. `linux/x86_64`; `lastSeen`: the relay's record, unix
   * seconds; each `null` when not known), with `userMessage` when the list is empty (the
   * core's words: why, and what to do).
   */
  async list(key, { activationId } = {}) {
    if (typeof key !== 'string') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'key', message: 'key must be a string' });
    if (activationId !== undefined && activationId !== null && typeof activationId !== 'string') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'activation_id', message: 'activationId must be a string' });
    const session = this.#session;
    // The session when there is one; else the seller's relay (the key proves it is the
    // caller's), and with none known the core's `not_signed_in`.
    return this.#run((c, s) => session === null
      ? c.Listing.viaRelay(s, key, activationId ?? undefined)
      : new c.Listing(s, session, key, activationId ?? undefined));
  }

  /**
   * Key recovery ("I lost my key"): the signed-in customer's keys this device can activate
   * (granted, unexpired, newest first; the core decides): `[{ id, displayKey, benefitId,
   * createdAt (unix seconds), limitActivations, expiresAt (unix seconds or null) }]`. Each item's `key` is the whole key,
   * for the activation only: not enumerable, so `JSON.stringify` and `console.log` show none.
   * An empty array has `userMessage` (not enumerable): the core's words for finding none.
   */
  async recover() {
    if (this.#session === null) throw new DevicesError({ code: 'not_signed_in', reason: 'invalid_input', message: 'not signed in' });
    const session = this.#session;
    const { keys, userMessage } = await this.#run((c, s) => new c.Recovery(s, session, Date.now() / 1000));
    const found = keys.map(({ key, ...shown }) => Object.defineProperty(shown, 'key', { value: key, enumerable: false }));
    // None found: the core's words for it (why, and what to do), beside the array's items.
    return userMessage === undefined ? found : Object.defineProperty(found, 'userMessage', { value: userMessage });
  }

  /**
   * Frees device `activationId` of `key` (Polar's public deactivate: no session needed).
   * A refusal of Polar's rejects with its reason as `code` (`not_found`: already freed, or not
   * this key's). Freeing this machine's own activation: use the client's `deactivate`, which
   * also forgets it here.
   */
  async free(key, activationId) {
    for (const [name, value] of [['key', key], ['activation_id', activationId]]) {
      if (typeof value !== 'string') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: name, message: `${name} must be a string` });
    }
    const freed = await this.#run((c, s) => c.Exchange.free(s, key, activationId));
    if (freed.denied) {
      const d = freed.denied;
      throw new DevicesError({ code: d.reason, reason: d.reason, status: d.status, message: d.userMessage });
    }
  }

  /**
   * Follows a rotated key (issue #64 item 4): rotation at Polar keeps a key's id, limits and
   * activations, and the old string answers `not_found` at once. Through this session, the
   * customer's keys are read for the id `client`'s cache remembers of `key`'s license (default:
   * the client's remembered key); the new string is validated with the activation that cache
   * remembers, so no slot is taken, and its record remembers it; once Polar grants it, the old
   * string's record is forgotten and, when it was the remembered key, the new one is remembered
   * in its place. The steps are the core's follow machine (this module's wasm), its reads and
   * writes of the cache done by `client` (a `LicenseClient` of `polar-license`). Resolves
   * `{ activationId, remembered, license: { id, displayKey, benefitId, expiresAt } }` with the
   * new `key` (not enumerable: never in JSON or logs); rejects with the
   * session's failures, `not_found` (no key of that id, or not rotated), `invalid_input` (field
   * `key`: nothing of its license is cached here), or Polar's denial of the new string (its
   * reason as `code`, with `status`).
   */
  async followRotation(client, { key } = {}) {
    if (typeof client?.[DRIVE] !== 'function') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'client', message: "client must be a LicenseClient of 'polar-license'" });
    if (key !== undefined && typeof key !== 'string') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'key', message: 'key must be a string' });
    if (this.#session === null) throw new DevicesError({ code: 'not_signed_in', reason: 'invalid_input', message: 'not signed in' });
    const old = key ?? (await client.rememberedKey());
    if (old === null) throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'key', message: 'no key given and none remembered' });
    const c = await load();
    // Signed mode's nonce for the validate: the host's random bytes (none where it has none).
    let random;
    try {
      random = Array.from(globalThis.crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
    } catch {
      random = undefined;
    }
    const session = this.#session;
    let follower;
    let end;
    try {
      // The client drives the machine with its storage, locks and fetch.
      end = (
        await client[DRIVE]((options, secret, now) => {
          follower = new c.Follower(options, secret, now, session, old, random);
          return [follower.start(), (given, body) => follower.give(given, body)];
        })
      ).done;
    } finally {
      follower?.free();
    }
    if (end.error) {
      if (end.error.code === 'session_expired') this.#session = null;
      throw new DevicesError(end.error);
    }
    if (end.denied) {
      const d = end.denied;
      throw new DevicesError({ code: d.reason, reason: d.reason, status: d.status, message: d.userMessage });
    }
    // The remembered key is the client's own entry: the new string in the old one's place.
    const remembered = end.forgot && (await client.rememberedKey()) === old;
    if (remembered) await client.rememberKey(end.key);
    const followed = { activationId: end.activationId, remembered, license: end.license };
    return Object.defineProperty(followed, 'key', { value: end.key, enumerable: false });
  }

  /**
   * A checkout the seller's relay makes for this app (issue #80, the relay's `checkout`
   * settings): `productId` one of the products the relay sells, with the app's `metadata`
   * (Polar's limits: kept on the checkout and its order), the buyer's `email` prefilled and the
   * `successUrl` (on an origin the relay allows). Asks the relay of `relay` (in signed mode,
   * the one at `baseUrl`). Resolves the checkout's URL, to open for the buyer and to follow
   * with `buy` (the gate calls its `checkout` with its devices: `(devices) =>
   * devices.openRelayCheckout(productId)`). Rejects with `invalid_input` (its `field`:
   * `product_id` not a UUID, `metadata` past Polar's limits, `relay_url` none known or not
   * https) before sending, or the relay's refusal typed (`refused`, said as the seller's
   * settings: a product it does not sell through the relay, a success URL on no origin it
   * allows; `rate_limited`).
   */
  async openRelayCheckout(productId, { metadata, email, successUrl } = {}) {
    for (const [name, value] of [['product_id', productId], ['email', email], ['success_url', successUrl]]) {
      if (value !== undefined && typeof value !== 'string') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: name, message: `${name} must be a string` });
    }
    if (metadata !== undefined && (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata))) throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'metadata', message: 'metadata must be an object' });
    const done = await this.#run((c, s) => new c.RelayCheckout(s, productId ?? '', metadata === undefined ? undefined : JSON.stringify(metadata), email, successUrl));
    return done.url;
  }

  /**
   * Buying in the app (issue #80): follows the checkout `checkout` (its URL or `polar_c_…`
   * client secret) until the buyer has paid, then finds the key bought through the customer
   * session Polar handed back (`sessionToken`, or the `successUrl` the buyer landed on, whose
   * `customer_session_token` is taken; else this object's session, once signed in), waiting
   * while Polar is still issuing it; with `client` (a `LicenseClient` of `polar-license`) it is
   * activated there with `label`. The steps and waits are the core's purchase machine.
   * Resolves `{ key: { id, displayKey, benefitId, limitActivations }, activation? }` (the whole
   * key as a non-enumerable `key.key`), or, when Polar gave no session (the buyer's email matched
   * an existing customer), `{ signIn: { email, userMessage, nextStep, … } }`: the code was asked
   * for at that address; `signIn(code)`, then `buy(checkout, { receipt: signIn, client })`.
   * Rejects with `code` `key_issuing` (still missing two minutes after paying: try again; never
   * `not_found`), `checkout_expired`, `checkout_failed`, `checkout_not_found`, `not_paid`, or
   * the portal's.
   */
  async buy(checkout, { sessionToken, successUrl, receipt, client, label } = {}) {
    if (typeof checkout !== 'string') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'checkout', message: 'checkout must be a string' });
    for (const [name, value] of [['session_token', sessionToken], ['success_url', successUrl], ['label', label]]) {
      if (value !== undefined && typeof value !== 'string') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: name, message: `${name} must be a string` });
    }
    if (client !== undefined && typeof client?.activate !== 'function') throw new DevicesError({ code: 'invalid_input', reason: 'invalid_input', field: 'client', message: "client must be a LicenseClient of 'polar-license'" });
    const session = this.#session;
    const done = await this.#run((c, s) => (receipt !== undefined && session !== null
      ? c.Buying.signedIn(s, session, receipt.checkoutId ?? '', receipt.email ?? undefined, receipt.createdAt ?? undefined, receipt.benefitIds ?? [])
      : new c.Buying(s, checkout, sessionToken ?? (successUrl === undefined ? session ?? undefined : undefined), successUrl)));
    if (done.signIn) {
      if (typeof done.signIn.email === 'string') await this.requestCode(done.signIn.email);
      return { signIn: done.signIn };
    }
    const { key: whole, ...shown } = done.key;
    const bought = { key: Object.defineProperty(shown, 'key', { value: whole, enumerable: false }) };
    if (client !== undefined) {
      bought.activation = await client.activate(whole, { label: label ?? 'This device' });
      await client.rememberKey(whole);
    }
    return bought;
  }

  /** A session never shows: not in `console.log`, `JSON.stringify` or `util.inspect`. */
  toJSON() {
    return { signedIn: this.signedIn };
  }
}

/** The devices of a key through a customer session (`new Devices(options)`). */
export function devices(options) {
  return new Devices(options);
}
