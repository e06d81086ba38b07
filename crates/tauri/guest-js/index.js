// @polar-license/tauri: the webview side of tauri-plugin-polar-license.
//
// Each function invokes one of the plugin's commands (`plugin:polar-license|<name>`) and
// resolves to its typed answer (index.d.ts). A refusal or an error rejects with a
// LicenseError carrying the plugin's fields (code, class, userMessage, detail, hint, …); a
// rejection that is not the plugin's (Tauri's own: a command the app's capabilities do not
// allow, a missing argument) stays a plain Error with Tauri's message.
import { invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';

/** The event the plugin emits with the fresh state after `checkInBackground`. */
export const CHECKED_EVENT = 'polar-license://checked';
/** The event the plugin emits when a seat's hold ends without a release (`{ seat, state,
 * error }`: `lost` with `seat_lost`, or `gone`). */
export const SEAT_ENDED_EVENT = 'polar-license://seat-ended';

/** Why a command of the plugin failed: the plugin's error, as an Error. */
export class LicenseError extends Error {
  constructor(data) {
    super(data.userMessage);
    this.name = 'LicenseError';
    this.code = data.code;
    this.class = data.class;
    this.userMessage = data.userMessage;
    // The next step alone, the core's (an older plugin sends none).
    this.nextStep = data.nextStep ?? null;
    this.detail = data.detail;
    this.hint = data.hint;
    this.field = data.field;
    this.status = data.status;
    this.retryAfter = data.retryAfter;
    this.remainingUsages = data.remainingUsages;
    // Why the key stopped (issue #68): from the seller's relay, else null (an older plugin
    // sends no field).
    this.stopped = data.stopped ?? null;
  }

  /** The plugin's fields as plain data. */
  toJSON() {
    const { code, userMessage, nextStep, detail, hint, field, status, retryAfter, remainingUsages, stopped } = this;
    return { code, class: this.class, userMessage, nextStep, detail, hint, field, status, retryAfter, remainingUsages, stopped };
  }
}

/** Why a customer-portal step failed (sign-in, devices, key recovery): the core's typed
 * failure, as an Error. `portalError` names it (`not_signed_in`, `session_expired`,
 * `code_invalid_or_expired`, `device_management_off`, `key_not_found`, `rate_limited`, …). */
export class DeviceError extends Error {
  constructor(data) {
    super(data.userMessage);
    this.name = 'DeviceError';
    this.portalError = data.portalError;
    this.code = data.code;
    this.class = data.class;
    this.userMessage = data.userMessage;
    this.detail = data.detail;
    this.field = data.field;
    this.status = data.status;
    this.retryAfter = data.retryAfter;
    this.customers = data.customers;
  }

  /** The plugin's fields as plain data. */
  toJSON() {
    const { portalError, code, userMessage, detail, field, status, retryAfter, customers } = this;
    return { portalError, code, class: this.class, userMessage, detail, field, status, retryAfter, customers };
  }
}

function isDeviceError(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.portalError === 'string' &&
    typeof value.class === 'string' &&
    typeof value.userMessage === 'string'
  );
}

function isPluginError(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.code === 'string' &&
    typeof value.class === 'string' &&
    typeof value.userMessage === 'string'
  );
}

/** Arguments without the ones left out (a Rust `Option` is `None` when absent). */
function args(entries) {
  return Object.fromEntries(Object.entries(entries).filter(([, v]) => v !== undefined));
}

async function call(command, entries = {}) {
  try {
    return await invoke(`plugin:polar-license|${command}`, args(entries));
  } catch (e) {
    throw typeof e?.purchaseError === 'string' ? new PurchaseError(e) : isDeviceError(e) ? new DeviceError(e) : isPluginError(e) ? new LicenseError(e) : e instanceof Error ? e : new Error(String(e));
  }
}

/** The grace-aware verdict for `key` (default: the remembered key). Never rejects for a
 * license that is not good: that is a state with `licensed: false` and its `code`. */
export function check(key) {
  return call('check', { key });
}

/** Answers at once from the cache; when `pending`, `onChecked` gets Polar's answer later. */
export function checkInBackground(key) {
  return call('check_in_background', { key });
}

/** Calls `handler` with every fresh state a background check brings; resolves to the
 * function that stops listening. */
export function onChecked(handler) {
  return listen(CHECKED_EVENT, (event) => handler(event.payload));
}

/** Activates `key` on this machine and remembers it (the label: the machine's host name and OS unless given). */
export function activate(key, options = {}) {
  return call('activate', { key, label: options.label });
}

/** Deactivates the remembered activation (or `activationId`) of the remembered key (or `key`). */
export function deactivate(options = {}) {
  return call('deactivate', { key: options.key, activationId: options.activationId });
}

/** One online validation, no cache answer. */
export function validate(options = {}) {
  return call('validate', {
    key: options.key,
    activationId: options.activationId,
    benefitId: options.benefitId,
  });
}

/** What the cache holds for `key` (default: the remembered key), with no request. */
export function status(key) {
  return call('status', { key });
}

/** Whether a key is remembered on this machine, and its redacted form. */
export function rememberedKey() {
  return call('remembered_key');
}

/** Forgets the remembered key (its activation stays: `deactivate` frees it). */
export async function forgetKey() {
  await call('forget_key');
}

/** May this copy use `feature` (the app's entitlement map)? */
export function hasFeature(feature, key) {
  return call('has_feature', { feature, key });
}

/** The entitlement value `name` of `key` (default: the remembered key) the seller's relay
 * signed into the lease (issue #68): a check, then the value read offline. Never rejects
 * for a value not granted or not known: that is its `state`. */
export function entitlement(name, key) {
  return call('entitlement', { name, key });
}

// Out of activations (a customer session signed in with the code Polar emails; the plugin
// keeps it in memory, never in the webview).

/** Asks Polar to email a 6-character sign-in code to `email` (`customerId`: one of several
 * customers with that email, after `customer_selection_required`). */
export async function requestSignInCode(email, options = {}) {
  await call('request_sign_in_code', { email, customerId: options.customerId });
}

/** Signs in with the emailed code (the session lasts one hour). */
export async function signIn(code) {
  await call('sign_in', { code });
}

/** Forgets the customer session. */
export async function signOut() {
  await call('sign_out');
}

/**
 * The devices of the remembered key (or `key`), this machine's marked: through the signed-in
 * session, or without one through the seller's relay (`options.relay`, its URL).
 */
export function listDevices(key, options = {}) {
  return call('list_devices', { key, relay: options.relay });
}

/** Frees the device `activationId` of the remembered key (or `key`); no session needed. */
export async function freeDevice(activationId, options = {}) {
  await call('free_device', { activationId, key: options.key });
}

/** The signed-in customer's keys this machine can activate, by id and display form. */
export function recoverableKeys() {
  return call('recoverable_keys');
}

/** Activates here the recoverable key `id` and remembers it. */
export function recoverKey(id, options = {}) {
  return call('recover_key', { id, label: options.label });
}

/** Follows the rotated key (the remembered one, or `options.key`) through the signed-in
 * session to its new string, keeping this machine's activation; the new key takes the old
 * one's place as the remembered key. Rejects with a DeviceError for the session's step
 * (`key_not_found`: not rotated), a LicenseError when Polar refuses the new key. */
export function followRotation(options = {}) {
  return call('follow_rotation', { key: options.key });
}

// Buying in the app (issue #80): the core's purchase machine in the plugin; the whole key
// never comes here.

/** A purchase that ended without a key, in the core's words: `purchaseError` is
 * `key_issuing` (paid, Polar still issuing the key: try again, never "wrong key"),
 * `checkout_expired`, `checkout_failed`, `checkout_not_found` or `not_paid`. */
export class PurchaseError extends Error {
  constructor(data) {
    super(data.userMessage);
    this.name = 'PurchaseError';
    this.purchaseError = data.purchaseError;
    this.userMessage = data.userMessage;
    this.nextStep = data.nextStep;
  }

  /** The plugin's fields as plain data. */
  toJSON() {
    const { purchaseError, userMessage, nextStep } = this;
    return { purchaseError, userMessage, nextStep };
  }
}

/** Opens a checkout from the seller's checkout link, `options.email` prefilled: its URL. */
export function openCheckoutLink(link, options = {}) {
  return call('open_checkout_link', { link, email: options.email });
}

/** Asks the seller's relay the plugin knows (signed mode's base URL, or the builder's
 * `relay_url` through `Options::configure`) for a checkout of
 * `productId` with `options.metadata` kept on it, `options.email` prefilled and
 * `options.successUrl`: its URL, to open for the buyer and to `buy`. */
export function openRelayCheckout(productId, options = {}) {
  return call('open_relay_checkout', {
    productId,
    metadata: options.metadata,
    email: options.email,
    successUrl: options.successUrl,
  });
}

/** Follows `checkout` until paid and activates the key bought here (the session of
 * `options.successUrl`, the URL the buyer landed on), or `{ signIn }`: the code was sent to
 * the checkout's address; `signIn(code)`, then `buySignedIn(signIn)`. */
export function buy(checkout, options = {}) {
  return call('buy', { checkout, successUrl: options.successUrl, label: options.label });
}

/** The rest of a purchase that answered `signIn`, once signed in with the emailed code. */
export function buySignedIn(receipt, options = {}) {
  return call('buy_signed_in', { receipt, label: options.label });
}

// Floating and CI seats (issue #67) through the seller's relay (the plugin's base URL). The
// plugin holds the seat: the core's machine decides what each answer does to it, when the
// heartbeat goes (the plugin's thread for the seat sends it) and when the hold ends (issue
// #76: `seat_lost` at the lease's end with no renewal). This package keeps no schedule: it
// listens for the end and releases on the AbortSignal.

/** Why a seat command failed: a LicenseError (`seats_full`, `seat_gone`, Polar's denial,
 * `invalid_input`, `offline`, …) with, for `seats_full`, the seats in use and when the
 * soonest frees. */
export class SeatError extends LicenseError {
  constructor(data) {
    super(data);
    this.name = 'SeatError';
    this.inUse = data.inUse;
    this.size = data.size;
    this.freesAt = data.freesAt;
    this.gone = data.gone;
  }

  /** The plugin's fields as plain data. */
  toJSON() {
    return { ...super.toJSON(), inUse: this.inUse, size: this.size, freesAt: this.freesAt, gone: this.gone };
  }
}

/** Acquires one of the key's seats (default: the remembered key) for this machine. */
export function seatAcquire(options = {}) {
  return seatCallTyped('seat_acquire', { key: options.key, machine: options.machine, ci: options.ci });
}

/** Extends the seat `seat`'s life (rejects with `seat_gone` when the relay freed it). */
export function seatHeartbeat(seat) {
  return seatCallTyped('seat_heartbeat', { seat });
}

/** Gives the seat `seat` back. */
export function seatRelease(seat) {
  return seatCallTyped('seat_release', { seat });
}

async function seatCallTyped(command, entries) {
  try {
    return await invoke(`plugin:polar-license|${command}`, args(entries));
  } catch (e) {
    throw isPluginError(e) ? new SeatError(e) : e instanceof Error ? e : new Error(String(e));
  }
}

/** Holds a seat: acquired now (its lease verified with the plugin's relay keys), heartbeated
 * by the plugin when the core's machine says, released when `options.signal` aborts (or
 * `release()` is called). `onLost(error)` is called once when the hold ends without a release
 * (the plugin's `polar-license://seat-ended`): `seat_lost` (its lease ended with no renewal the
 * relay signed: stop what the seat licenses) or `seat_gone` (the relay freed it, or Polar
 * denied the key); `error.gone` is true. Resolves to the seat's handle; rejects with a
 * SeatError (`seats_full`, `invalid_input` naming `relay_keys` in a plugin without relay
 * keys, `protocol_error` for a lease that does not verify, …) when no seat is held. */
export async function seat(options = {}) {
  const { signal, onLost } = options;
  if (signal?.aborted) throw signal.reason ?? new Error('aborted');
  // Listening before the seat exists: an end emitted at once is not missed.
  let id = null;
  let ended = null;
  const early = [];
  const onEnded = (payload) => {
    if (ended !== null || released !== null) return;
    ended = payload.state;
    signal?.removeEventListener('abort', release);
    try {
      onLost?.(new SeatError(payload.error));
    } catch {
      // The app's callback threw: nothing of the seat's depends on it.
    }
  };
  const unlisten = await listen(SEAT_ENDED_EVENT, (event) => {
    const payload = event.payload;
    if (id === null) early.push(payload);
    else if (payload?.seat === id) onEnded(payload);
  });
  let info;
  try {
    info = await seatAcquire(options);
  } catch (e) {
    unlisten();
    throw e;
  }
  id = info.id;
  let released = null;
  async function release() {
    if (released === null) {
      signal?.removeEventListener('abort', release);
      unlisten();
      released = seatRelease(info.id).catch((e) => ({ released: false, error: e }));
    }
    return released;
  }
  for (const payload of early.splice(0)) if (payload?.seat === id) onEnded(payload);
  signal?.addEventListener('abort', release, { once: true });
  return {
    get info() {
      return info;
    },
    get id() {
      return info.id;
    },
    /** `held`, `lost` or `gone` (`onLost` was called), or `released`. */
    get state() {
      return released !== null ? 'released' : ended ?? 'held';
    },
    release,
  };
}

// Usage reported to the seller's relay (issue #68): the report, its idempotency id and its
// sends again with the same id are the plugin's core; this package only passes the answer on.

/** Why a report was not recorded: a LicenseError (`credits_exhausted` with the `balance`,
 * Polar's denial of the key, `invalid_input`, `offline`, `rate_limited`, or `usage_backlog`:
 * send it again later with the same `id`), with the report's `id`. */
export class UsageError extends LicenseError {
  constructor(data) {
    super(data);
    this.name = 'UsageError';
    this.balance = data.balance ?? null;
    this.id = data.id;
  }

  /** The plugin's fields as plain data. */
  toJSON() {
    return { ...super.toJSON(), balance: this.balance, id: this.id };
  }
}

/** Reports `units` of `meter` used with the remembered key (or `key`) to the seller's relay
 * (`relay`, its URL; default the plugin's base URL), with the app's idempotency `id` (default a
 * new UUID v4): resolves to `{ id, duplicate, balance }`, rejects with a UsageError. */
export async function recordUsage(options = {}) {
  const { meter, units, id, key, relay } = options;
  try {
    return await invoke('plugin:polar-license|record_usage', args({ meter, units, id, key, relay }));
  } catch (e) {
    throw isPluginError(e) ? new UsageError(e) : e instanceof Error ? e : new Error(String(e));
  }
}
