// Types of `polar-license/ui`: the activation screen `<polar-license-gate>` (hand-written).
import type { LicenseClientOptions, ReasonCode, Stopped } from './index.js';
import type { Devices, DevicesErrorCode } from './devices.js';

/** Every string the screen shows; `{key}` is the redacted key, `{grace}` and `{wait}` durations. */
export interface GateStrings {
  title: string;
  licensedTitle: string;
  keyLabel: string;
  keyHint: string;
  activate: string;
  activating: string;
  checking: string;
  /** By default the check's `userMessage`, the library's words (as every face says them); set
   * these for the app's own: `offlineGrace` licensed from the cache while Polar cannot be reached
   * (`{grace}`: the grace left, in the locale). */
  licensed?: string;
  offlineGrace?: string;
  holder: string;
  key: string;
  expires: string;
  renews: string;
  ends: string;
  device: string;
  deactivate: string;
  deactivating: string;
  /** By default the deactivation's `userMessage`, the library's words. */
  deactivated?: string;
  portal: string;
  /** "Try again" with the key kept from an unverified refusal (`{key}`). */
  tryAgain: string;
  freeSeat: string;
  lostKey: string;
  back: string;
  recoverTitle: string;
  emailLabel: string;
  emailHint: string;
  sendCode: string;
  codeLabel: string;
  /** `{email}`: where the code went. */
  codeHint: string;
  signIn: string;
  working: string;
  /** Above the key's devices (`{key}`). */
  devicesHint: string;
  /** After a device's label (`{date}`; with the time when another device shares the day). */
  activatedOn: string;
  /** The device this machine holds, marked in the list. */
  thisDevice: string;
  /** When the device was last seen, when the list says (`{date}`, with the time). */
  lastSeen: string;
  /** For devices still alike (one label, one minute): the end of the activation id (`{id}`). */
  deviceId: string;
  free: string;
  /** `{device}`: its label. */
  freeing: string;
  /** By default the empty list's `userMessage`, the library's words (`{key}`: the redacted key). */
  noDevices?: string;
  keysHint: string;
  /** After a key's display form in key recovery (`{date}`; with the time when another key shares the day). */
  createdOn: string;
  useKey: string;
  /** Above the accounts of one email (Polar's `customer_selection_required`). */
  accountsHint: string;
  /** An account without a name (`{n}`: its place). */
  account: string;
  pickAccount: string;
  /** By default the empty recovery's `userMessage`, the library's words. */
  noKeys?: string;
  buy: string;
  buyTitle: string;
  buyPay: string;
  openCheckout: string;
  buyFinding: string;
  buyAgain: string;
  /** The failures of the sign-in and the lists (polar-license/devices' `code`, and
   * `invalid_<field>` for a refused input): by default the error's `userMessage`, the library's
   * one sentence and next step (as every face says it); set these for the app's own words.
   * `{key}`: the redacted key. */
  invalid_email?: string;
  invalid_code?: string;
  not_signed_in?: string;
  customer_selection_required?: string;
  refused?: string;
  code_invalid_or_expired?: string;
  session_expired?: string;
  device_management_off?: string;
  key_not_found?: string;
  /** A failure the library has no words for (an error from outside it: `{code}`): by default
   * the library's last resort. */
  unknown?: string;
  /** Why the key stopped (a refusal's `stopped`, from the seller's relay): by default the
   * refusal's `userMessage`, the library's one sentence for it (as every face says it); set
   * these for the app's own words, said in place of it. `{at}`, `{until}`: dates in the
   * locale; `{key}`: the redacted key. */
  stopped_paused?: string;
  /** A pause with its end known (`{until}`). */
  stopped_paused_until?: string;
  stopped_canceled?: string;
  /** A cancellation with its date known (`{at}`). */
  stopped_canceled_at?: string;
  stopped_seat_revoked?: string;
  stopped_refunded?: string;
  stopped_rotated?: string;
  stopped_past_due?: string;
  /** The locale of dates and durations; empty: the element's `lang`, else the browser's. */
  locale: string;
}

/** The English strings. */
export declare const DEFAULT_STRINGS: Readonly<GateStrings>;

/** A reason code's words (`not_found`, `seats_full`, …, docs/interfaces.md §1): by default a
 * refusal is said in the library's words, its `userMessage` (the core's one sentence and next
 * step, as every face says it); set a code for the app's own words in place of them. `{key}`:
 * the redacted key; `{wait}`: for `rate_limited`, how long to wait. */
export type ReasonStrings = Partial<Record<ReasonCode, string>>;

/** The library's redaction of a key: `****-` and its last six characters (`****` when short). */
export declare function redactKey(key: string): string;

/**
 * What the screen asks of its client: a `LicenseClient` of this package has all of it; another
 * object (an adapter over `@polar-license/tauri`, an Electron preload's bridge) needs the same
 * shapes. Rejections carry a reason `code` (docs/interfaces.md §1).
 */
export interface GateClient {
  activate(key: string, options: { label: string }): Promise<{ activation?: { label?: string } | null } | unknown>;
  /** With no key (a client without `rememberedKey`): the key the client remembers. */
  check(key?: string): Promise<GateCheckResult>;
  deactivate(key?: string): Promise<unknown>;
  /** Optional: how long a rate-limited client waits (`blockedUntil - now`, seconds). */
  status?(key: string): Promise<{ now: number; blockedUntil: number | null }>;
  /** Optional: the key to check when the screen opens (`rememberKeys`). */
  rememberedKey?(): Promise<string | null>;
}

/** The parts of a check's verdict the screen shows (a `CheckResult` has them). */
export interface GateCheckResult {
  source?: 'online' | 'cache';
  graceRemaining?: number | null;
  reason?: string | null;
  activation?: { label?: string } | null;
  license?: {
    /** Shown when the screen does not know the key (a bridge without it): Polar's redacted key. */
    displayKey?: string;
    expiresAt?: string | null;
    customer?: { name?: string | null; email?: string | null } | null;
    member?: { email?: string | null } | null;
    subscription?: { currentPeriodEnd?: string | null; cancelAtPeriodEnd?: boolean; endsAt?: string | null } | null;
  };
}

export type GateState = 'empty' | 'checking' | 'activating' | 'licensed' | 'refused' | 'deactivating' | 'free-seat' | 'recover' | 'buy';

/** Where "Free a seat" and "Lost your key?" are: the email, the account (when several have
 * that email), the code, the list. */
export type GateStep = 'email' | 'customer' | 'code' | 'list' | 'pay' | 'find';

/** What the screen asks of polar-license/devices (a `Devices` has all of it). */
export type GateDevices = Pick<Devices, 'signedIn' | 'requestCode' | 'signIn' | 'list' | 'free' | 'recover'> & Partial<Pick<Devices, 'buy'>>;

/** What the screen shows of a licensed key (never the whole key). */
export interface GateLicenseView {
  /** The key redacted. */
  key: string;
  /** The seat holder's email, else the customer's name or email. */
  holder: string | null;
  /** The date shown: the key's expiry, the subscription's renewal, or its end once cancelled. */
  until: { kind: 'expires' | 'renews' | 'ends'; at: string } | null;
  /** This device's activation label. */
  device: string | null;
  source: 'online' | 'cache';
  /** Seconds of grace left for a cache answer. */
  graceRemaining: number | null;
  /** Licensed from the cache because Polar could not be asked. */
  offline: boolean;
}

/** The `detail` of the `polar-license-change` event, sent at every change of state. */
export interface GateChangeDetail {
  state: GateState;
  /** With `state` `free-seat`, `recover` or `buy` (`pay`: the checkout's window open;
   * `find`: the key bought being found and activated; `code`: no session from Polar, the code it
   * emailed to the checkout's address asked for). */
  step?: GateStep;
  /** The reason code of a refusal (or of a failed deactivation; in `free-seat` and `recover`,
   * the `code` of polar-license/devices' failure), else `null`. */
  reason: ReasonCode | DevicesErrorCode | 'unknown' | null;
  /** With a refusal through the seller's relay: why the key stopped, else `null`. */
  stopped: Stopped | null;
  licensed: boolean;
  /** The sentence shown in the live region. */
  message: string;
  /** With `state` `licensed`. */
  license?: GateLicenseView;
}

/**
 * `<polar-license-gate>`, defined when this module is imported. Attributes: `device-label` (the
 * activation's label, default `Browser on <platform>`), `portal-url` (a link to the customer
 * portal, shown with the refusals it helps with and when licensed). With `devices` (or
 * `options`): "Free a seat" at the activation limit and "Lost your key?". Styled through CSS custom
 * properties (`--polar-gate-font`, a `font` shorthand, default the system's sans-serif;
 * `--polar-gate-accent`, `--polar-gate-danger`, …) and `::part()` (`container`,
 * `title`, `form`, `label`, `input`, `hint`, `button`, `activate`, `deactivate`, `details`,
 * `message`, `actions`, `link`, `portal`, `retry`, `free-seat`, `lost-key`, `back`, `sign-in`,
 * `entry`, `next`, `list`, `pick`, `buy`, `checkout`). With `checkout` (and `devices` or
 * `options`): "Buy a license", which ends licensed with no key typed.
 */
export declare class PolarLicenseGate extends HTMLElement {
  /** The client (a `LicenseClient`, or any object of this shape). */
  client: GateClient | null;
  /** Or options: a `LicenseClient` is made from them (`rememberKeys` on by default), and a
   * `Devices` of polar-license/devices on the first "Free a seat" or "Lost your key?". */
  set options(options: LicenseClientOptions);
  /** polar-license/devices' `Devices` (or this shape): "Free a seat" and "Lost your key?". */
  devices: GateDevices | null;
  /** The app's product names by license-key benefit id (`{ '<benefit id>': 'Pro' }`): key
   * recovery's list shows them beside each key (Polar's key list names the benefit by id only). */
  products: Readonly<Record<string, string>>;
  /** Buying in the app (issue #80): resolves to a checkout's URL (`…/checkout/polar_c_…`) made
   * for this purchase (by the seller's relay or backend); with it, "Buy a license". A checkout
   * link cannot be given: a page cannot read the redirect Polar answers it with. */
  checkout: ((devices: Devices) => string | Promise<string>) | null;
  /** The app's strings over the English ones. */
  get strings(): Readonly<GateStrings & ReasonStrings>;
  set strings(strings: Partial<GateStrings> & ReasonStrings);
  readonly state: GateState;
  readonly reason: ReasonCode | DevicesErrorCode | 'unknown' | null;
  /** With a refusal through the seller's relay: why the key stopped (also the `stopped`
   * attribute, its kind), else `null`. A paused, cancelled, past-due or removed-seat key keeps
   * "Try again", which checks it again (a resumed subscription licenses then). */
  readonly stopped: Stopped | null;
  /** Checks the key activated here, or the client's remembered key (`empty` without one). */
  refresh(): Promise<void>;
  /** Activates `key` on this device, as the form does. */
  activate(key: string): Promise<void>;
  /** Deactivates this device and forgets the key here. */
  deactivate(): Promise<void>;
  /** After the activation limit: sign in by email code, list the key's devices, free one. */
  freeSeat(): Promise<void>;
  /** Sign in by email code, pick one of the customer's keys, activate it here. */
  recoverKey(): Promise<void>;
  /** "Buy a license": opens the checkout in a window of its own, then activates the key bought
   * here (the session of the success URL when the window lands on this origin, else the code
   * Polar emails to the checkout's address); Polar still issuing the key is waited for. */
  buy(): Promise<void>;
}

declare global {
  interface HTMLElementTagNameMap {
    'polar-license-gate': PolarLicenseGate;
  }
  interface HTMLElementEventMap {
    'polar-license-change': CustomEvent<GateChangeDetail>;
  }
}
