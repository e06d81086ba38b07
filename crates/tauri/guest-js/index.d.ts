// Types of @polar-license/tauri: the answers of tauri-plugin-polar-license's commands, field
// for field as the Rust side serializes them (crates/tauri/src/answers.rs; the tests check
// every answer the Rust tests produced against these types).
import type { UnlistenFn } from '@tauri-apps/api/event';

/** Polar said no (never falls back to the cache). */
export type DenialCode =
  | 'not_found'
  | 'inactive'
  | 'expired'
  | 'conditions_mismatch'
  | 'benefit_mismatch'
  | 'customer_mismatch'
  | 'usage_exhausted'
  | 'activation_limit'
  | 'activations_not_supported'
  | 'seats_full'
  | 'credits_exhausted';

/** No trustworthy answer (network, rate limit, server fault, grace rules). */
export type UnverifiedCode =
  | 'offline'
  | 'rate_limited'
  | 'server_error'
  | 'grace_expired'
  | 'clock_rollback'
  | 'not_yet_verified'
  | 'replayed'
  | 'seat_lost';

/** The request or the answer is wrong in a way retrying will not fix (`load_error`: never
 * from this plugin, the npm package's own). */
export type ErrorCode = 'protocol_error' | 'invalid_input' | 'cache_error' | 'load_error';

/** Every stable reason code (docs/interfaces.md §1). */
export type ReasonCode = DenialCode | UnverifiedCode | ErrorCode;

/** The class of a reason code. */
export type ReasonClass = 'denied' | 'unverified' | 'error';

/** Why a cached answer licensed although Polar was asked. */
export type FallbackCode = 'offline' | 'rate_limited' | 'server_error' | 'protocol_error';

/** Why a feature is, or is not, granted. */
export type FeatureWhy =
  | 'granted'
  | 'license_not_valid'
  | 'not_granted_by_benefit'
  | 'unknown_feature'
  | 'usage_exhausted';

/** What the UI may show of a license: never the whole key. */
export interface LicenseSummary {
  /** Polar's redacted key, e.g. `****-4C5B6A`. */
  displayKey: string;
  status: 'granted' | 'revoked' | 'disabled';
  benefitId: string;
  customerEmail: string | null;
  /** Unix seconds; `null` for never. */
  expiresAt: number | null;
  usage: number;
  limitUsage: number | null;
  limitActivations: number | null;
  /** The activation this machine validates, when known. */
  activationId: string | null;
  /** Polar API 2027-01 and later (absent before, or when Polar sent none): the seat holder. */
  member?: Member;
  /** 2027-01 and later: the subscription the key was granted through. */
  subscription?: Subscription;
  /** 2027-01 and later: the order the key was granted through (`paid`: whether it is paid). */
  order?: Order;
}

/** The seat holder a key is assigned to (Polar API 2027-01 and later). */
export interface Member {
  id: string;
  email: string | null;
  /** The seller's own id for the member. */
  externalId: string | null;
}

/** The subscription a key was granted through (2027-01 and later). Times are unix seconds. */
export interface Subscription {
  id: string;
  /** `active`, `trialing`, `past_due`, `canceled`, … as Polar sent it. */
  status: string;
  currentPeriodStart: number | null;
  currentPeriodEnd: number | null;
  /** The customer cancelled: the subscription ends at the period end. */
  cancelAtPeriodEnd: boolean;
  /** When the subscription ends or ended; `null` while it renews. */
  endsAt: number | null;
}

/** The order a key was granted through (2027-01 and later). */
export interface Order {
  id: string;
  /** Unix seconds, when known. */
  createdAt: number | null;
  /** `paid`, `pending`, `refunded`, `partially_refunded`, … as Polar sent it. */
  status: string;
  paid: boolean;
}

/** May this copy use a feature? */
export interface FeatureState {
  feature: string;
  granted: boolean;
  why: FeatureWhy;
  /** When the license itself is not valid: its reason code. */
  licenseReason: ReasonCode | null;
  /** For a metered feature: usages left. */
  remainingUsage: number | null;
  source: 'online' | 'cache' | null;
}

/** A check's answer: what the UI shows. A license that is not good is a state, not an error. */
export interface LicenseState {
  licensed: boolean;
  outcome: 'licensed' | ReasonClass;
  source: 'online' | 'cache' | null;
  /** The reason code when not licensed. */
  code: ReasonCode | null;
  class: ReasonClass | null;
  /** A sentence for the person using the app: why it is not licensed, or, for a licensed
   * answer, the core's words for it ("This device is licensed.", or how long it stays licensed
   * while Polar cannot be reached). Tell the answer by `licensed`, not by this. */
  userMessage: string | null;
  /** Its next step alone (the core's words), when not licensed. */
  nextStep?: string | null;
  /** For a key that was valid here before and is refused now: what probably happened. */
  hint: string | null;
  /** Polar's text or ours, for logs and support. */
  detail: string | null;
  /** For `invalid_input`: the field at fault. */
  field: string | null;
  /** Ask the user for a key (none remembered, or not a key). */
  needsKey: boolean;
  /** `checkInBackground`'s immediate answer while Polar is asked: `onChecked` follows. */
  pending: boolean;
  /** Unix seconds. */
  verifiedAt: number | null;
  /** When licensed: when the grace ends (unix seconds) if Polar stays unreachable; in signed mode never past the lease's end. */
  graceEndsAt: number | null;
  /** Signed mode: the stored lease that verifies (`null` for none, or without relay keys). */
  lease: Lease | null;
  /** For a licensed answer from the cache: seconds of grace left. */
  graceRemaining: number | null;
  fallback: FallbackCode | null;
  /** `false` when the cache could not be written (the answer stands). */
  cacheRefreshed: boolean;
  /**
   * For an online answer through a seller's relay: where the relay took Polar's verdict from,
   * as its `polar-license-source` header said (`polar`: asked just now; `store`: its store;
   * `stale`: a stored grant replayed while Polar could not be asked). `null` without a relay,
   * and for the cache's answers.
   */
  relaySource: 'polar' | 'store' | 'stale' | null;
  license: LicenseSummary | null;
  /** Perpetual fallback, when the app stated its build's release date (`Options::released` on the Rust side); `null` otherwise. */
  perpetual: Perpetual | null;
  /** A trial (docs/trials.md): the local trial while no key is remembered (`Options::trial` on the Rust side; the answer still asks for a key), or a key from a trial product; `null` otherwise. */
  trial: Trial | null;
  /** Every feature of the app's entitlement map, by name. */
  features: Record<string, FeatureState>;
  /**
   * The key's entitlement values (issue #68): the Feature Flag values Polar grants it, by
   * name, as the seller's relay signed them into the lease this licensed answer stands on
   * (read offline). `{}`: Polar grants none. `null`: not known (unsigned mode: values need
   * the seller's relay; a relay without `--sign-entitlements` or that had not read them
   * yet; not licensed).
   */
  entitlements: Record<string, EntitlementValue> | null;
  /** For a denial through the seller's relay: why the key stopped; `null` otherwise. */
  stopped: Stopped | null;
}

/** An entitlement value, typed as Polar's metadata values. */
export type EntitlementValue = string | number | boolean;

/** `entitlement`'s answer: one value of the key (issue #68). */
export interface EntitlementState {
  name: string;
  /** The value when `granted`, else `null`. */
  value: EntitlementValue | null;
  /**
   * `granted`; `absent` (the relay signed the key's values, this one is not among them);
   * `unknown` (the lease carries no values: a relay without `--sign-entitlements`, or that
   * had not read them yet: check again); `unsigned` (the answer stands on no signed lease:
   * values need the seller's relay and its public key); `not_licensed` (`check` says why).
   */
  state: 'granted' | 'absent' | 'unknown' | 'unsigned' | 'not_licensed';
  /** For `absent`, `unknown` and `unsigned`: the core's one sentence and next step for the
   * person, as one line (every face's words); `null` otherwise. */
  userMessage?: string | null;
  /** The next step of `userMessage`, alone. */
  nextStep?: string | null;
}

/** Why a key stopped (a denial's detail from the seller's relay, issue #68). */
export type StopKind = 'paused' | 'canceled' | 'seat_revoked' | 'refunded' | 'rotated' | 'past_due';

/** A denial's detail: what stopped the key, and its dates (unix seconds, `null` when unknown). */
export interface Stopped {
  kind: StopKind;
  /** When it happened (paused, ended, removed, refunded, rotated, went past due). */
  at: number | null;
  /** For `paused`: when the subscription resumes, if Polar said. */
  until: number | null;
}

/** A trial's standing (docs/trials.md). */
export interface Trial {
  /** `true` for the app's local trial of N days (no key); `false` for a key from a trial product. */
  local: boolean;
  /** `refused`: a local trial's record edited, copied, or its clock set back (not a trial that runs). */
  state: 'active' | 'ended' | 'refused';
  /** When the local trial started (unix seconds); `null` for a key. */
  startedAt: number | null;
  /** When it ends (unix seconds), when known. */
  endsAt: number | null;
  /** Whole days left, counted up (0 once ended). */
  daysLeft: number;
}

/** What a check says about the release dates the key covers (perpetual fallback, docs/perpetual.md). */
export interface Perpetual {
  /** The build's release date the app stated, `YYYY-MM-DD`. */
  released: string;
  /** The end of the time the key was paid for (unix seconds); `null` when no end is known. */
  paidThrough: number | null;
  /** `true` when the answer licenses only because this build was released on or before `paidThrough`: the key itself has expired (offer the upgrade). */
  fallback: boolean;
}

/** Signed mode (the relay's offline lease): which relay key signed it and when it ends. */
export interface Lease {
  kid: string;
  /** Unix seconds: offline licensing stops then, whatever the grace says. */
  expiresAt: number;
}

/** `activate`'s answer. */
export interface Activated {
  activationId: string;
  label: string;
  license: LicenseSummary;
  /** Signed mode: the lease stored with it. */
  lease: Lease | null;
}

/** `validate`'s answer. */
export interface Validated {
  license: LicenseSummary;
  /** Signed mode: the stored lease that verifies. */
  lease: Lease | null;
}

/** `status`'s answer: what the cache holds, with no request. */
export interface StatusState {
  standing: 'none' | 'denied' | 'licensed' | 'lapsed';
  stored: 'empty' | 'untrusted' | 'present';
  activationId: string | null;
  verifiedAt: number | null;
  graceEndsAt: number | null;
  /** Signed mode: the stored lease that verifies. */
  lease: Lease | null;
  graceRemaining: number | null;
  /** The denial that is the standing. */
  denied: DenialCode | null;
  displayKey: string | null;
}

/** `rememberedKey`'s answer. */
export interface RememberedKey {
  remembered: boolean;
  displayKey: string | null;
}

/** The plugin's error as it crosses the IPC. */
export interface LicenseErrorData {
  code: ReasonCode;
  class: ReasonClass;
  /** A sentence for the person using the app (the core's sentence and next step). */
  userMessage: string;
  /** Its next step alone (the core's words). */
  nextStep?: string | null;
  /** Polar's text or ours, for logs and support. */
  detail: string;
  hint: string | null;
  /** For `invalid_input`: the field at fault. */
  field: string | null;
  /** The HTTP status, when there was one. */
  status: number | null;
  /** For `rate_limited`: seconds to wait. */
  retryAfter: number | null;
  /** For `usage_exhausted`: the usages left. */
  remainingUsages: number | null;
  /** For a denial through the seller's relay: why the key stopped; `null` otherwise. */
  stopped: Stopped | null;
}

/** Why a command failed: every rejection of these functions that comes from the plugin. */
export declare class LicenseError extends Error implements LicenseErrorData {
  readonly name: 'LicenseError';
  readonly code: ReasonCode;
  readonly class: ReasonClass;
  readonly userMessage: string;
  readonly nextStep: string | null;
  readonly detail: string;
  readonly hint: string | null;
  readonly field: string | null;
  readonly status: number | null;
  readonly retryAfter: number | null;
  readonly remainingUsages: number | null;
  readonly stopped: Stopped | null;
  constructor(data: LicenseErrorData);
  toJSON(): LicenseErrorData;
}

/** One device (a live activation) of a key. */
export interface DeviceInfo {
  /** The activation id (what `freeDevice` frees). */
  id: string;
  label: string;
  /** Unix seconds. */
  activatedAt: number;
  /** The activation this machine holds (by its cache, or by the fingerprint its meta records). */
  thisMachine: boolean;
  /** The platform family it recorded (`linux/x86_64`, …); `null` when none. */
  platform: string | null;
  /** When the seller's relay last saw it validated (unix seconds); `null` when not known. */
  lastSeen: number | null;
}

/** `listDevices`' answer: the key's live devices, oldest first. */
export interface DeviceList {
  /** The key, redacted (`****-4C5B6A`). */
  displayKey: string;
  keyId: string;
  limitActivations: number | null;
  devices: DeviceInfo[];
}

/** `followRotation`'s answer (never the whole new key: it is remembered in the old one's place). */
export interface Followed {
  /** The activation the new key was validated with: the one this machine held. */
  activationId: string | null;
  /** The new key took the old one's place as the remembered key. */
  remembered: boolean;
  /** The license under its new key (`displayKey` is the new key's). */
  license: LicenseSummary;
}

/** A key `recoverableKeys` offers (never the whole key). */
export interface RecoverableKey {
  /** What `recoverKey` takes. */
  id: string;
  displayKey: string;
  benefitId: string;
  limitActivations: number | null;
  /** Unix seconds; `null`: never. */
  expiresAt: number | null;
}

/** One of several customers with the email. */
export interface CustomerChoice {
  id: string;
  name: string | null;
}

/** The name of a customer-portal failure (docs/interfaces.md §2's `portal_error`), or the reason code of a failure that is no portal answer. */
export type PortalErrorCode =
  | 'code_invalid_or_expired'
  | 'session_expired'
  | 'not_signed_in'
  | 'customer_selection_required'
  | 'rate_limited'
  | 'key_not_found'
  | 'device_management_off'
  | 'refused'
  | ReasonCode;

/** A customer-portal step's error as it crosses the IPC. */
export interface DeviceErrorData {
  portalError: PortalErrorCode;
  /** The reason code, when the failure has one. */
  code: ReasonCode | null;
  class: ReasonClass;
  /** A sentence for the person using the app, with its next step. */
  userMessage: string;
  detail: string;
  /** For `invalid_input`: the field at fault (`session` when not signed in). */
  field: string | null;
  /** The HTTP status of a `refused`. */
  status: number | null;
  /** For `rate_limited`: seconds to wait. */
  retryAfter: number | null;
  /** For `customer_selection_required`: the customers to choose from. */
  customers: CustomerChoice[];
}

/** Why a sign-in, device or recovery step failed. */
export declare class DeviceError extends Error implements DeviceErrorData {
  readonly name: 'DeviceError';
  readonly portalError: PortalErrorCode;
  readonly code: ReasonCode | null;
  readonly class: ReasonClass;
  readonly userMessage: string;
  readonly detail: string;
  readonly field: string | null;
  readonly status: number | null;
  readonly retryAfter: number | null;
  readonly customers: CustomerChoice[];
  constructor(data: DeviceErrorData);
  toJSON(): DeviceErrorData;
}

/** The event `checkInBackground` is followed by when `pending`. */
export declare const CHECKED_EVENT: 'polar-license://checked';

/** The grace-aware verdict for `key` (default: the remembered key). */
export declare function check(key?: string): Promise<LicenseState>;
/** Answers at once from the cache; when `pending`, `onChecked` gets Polar's answer. */
export declare function checkInBackground(key?: string): Promise<LicenseState>;
/** Calls `handler` with each fresh state; resolves to the function that stops listening. */
export declare function onChecked(handler: (state: LicenseState) => void): Promise<UnlistenFn>;
/** `deactivate`'s answer (an addition): what to tell the person, the library's words. */
export interface Deactivated {
  /** The seat is free: the sentence and its next step, to show whole. */
  userMessage: string;
  /** The next step alone. */
  nextStep: string;
}
/** Activates `key` on this machine and remembers it. */
export declare function activate(key: string, options?: { label?: string }): Promise<Activated>;
/** Deactivates the remembered activation (or `activationId`) of the remembered key (or `key`). */
export declare function deactivate(options?: { key?: string; activationId?: string }): Promise<Deactivated>;
/** One online validation, no cache answer. */
export declare function validate(options?: {
  key?: string;
  activationId?: string;
  benefitId?: string;
}): Promise<Validated>;
/** What the cache holds for `key` (default: the remembered key). */
export declare function status(key?: string): Promise<StatusState>;
/** Whether a key is remembered here, and its redacted form. */
export declare function rememberedKey(): Promise<RememberedKey>;
/** Forgets the remembered key. */
export declare function forgetKey(): Promise<void>;
/** May this copy use `feature`? */
export declare function hasFeature(feature: string, key?: string): Promise<FeatureState>;
/** The entitlement value `name` the seller's relay signed into the key's lease (a check, then read offline). */
export declare function entitlement(name: string, key?: string): Promise<EntitlementState>;
/** Asks Polar to email a sign-in code to `email` (rejects with a DeviceError). */
export declare function requestSignInCode(email: string, options?: { customerId?: string }): Promise<void>;
/** Signs in with the emailed code; the session stays in the plugin's memory. */
export declare function signIn(code: string): Promise<void>;
/** Forgets the customer session. */
export declare function signOut(): Promise<void>;
/** The devices of the remembered key (or `key`), this machine's marked (rejects with a DeviceError). */
export declare function listDevices(
  key?: string,
  options?: {
    /** Without a session: the seller's relay's URL, which lists the key's devices (issue #64); default the plugin's relay (`relay_url`, or in signed mode its base URL). */
    relay?: string;
  },
): Promise<DeviceList>;
/** Frees the device `activationId` (rejects with a LicenseError, as `deactivate`). */
export declare function freeDevice(activationId: string, options?: { key?: string }): Promise<void>;
/** The signed-in customer's keys this machine can activate (rejects with a DeviceError). */
export declare function recoverableKeys(): Promise<RecoverableKey[]>;
/** Activates the recoverable key `id` here (a DeviceError for the session's step, a LicenseError for the activation's). */
export declare function recoverKey(id: string, options?: { label?: string }): Promise<Activated>;
/** Follows the rotated key (default: the remembered one) to its new string with this machine's activation (a DeviceError for the session's step, `key_not_found` when not rotated; a LicenseError when Polar refuses the new key). */
export declare function followRotation(options?: { key?: string }): Promise<Followed>;

/** A purchase's failure as the plugin sends it. */
export interface PurchaseErrorData {
  purchaseError: 'key_issuing' | 'checkout_expired' | 'checkout_failed' | 'checkout_not_found' | 'not_paid' | (string & {});
  userMessage: string;
  nextStep: string;
}
/** A purchase that ended without a key (issue #80), in the core's words. */
export declare class PurchaseError extends Error {
  readonly name: 'PurchaseError';
  /** `key_issuing` (paid, Polar still issuing the key: try again), `checkout_expired`, `checkout_failed`, `checkout_not_found`, `not_paid`. */
  readonly purchaseError: 'key_issuing' | 'checkout_expired' | 'checkout_failed' | 'checkout_not_found' | 'not_paid' | (string & {});
  readonly userMessage: string;
  readonly nextStep: string;
  toJSON(): PurchaseErrorData;
}
/** A purchase that needs the code Polar emailed to the checkout's address. */
export interface PurchaseSignIn {
  checkoutId: string;
  email: string | null;
  /** Unix seconds. */
  createdAt: number | null;
  benefitIds: string[];
  userMessage: string;
  nextStep: string;
}
/** `buy`'s answer: the key bought, activated here (never the whole key), or the sign-in. */
export interface Bought {
  displayKey: string | null;
  activated: Activated | null;
  signIn: PurchaseSignIn | null;
}
/** Opens a checkout from the seller's checkout link: its URL (a PurchaseError `checkout_not_found`). */
export declare function openCheckoutLink(link: string, options?: { email?: string }): Promise<string>;
/** Asks the seller's relay the plugin knows (signed mode's base URL, or `relay_url` through `Options::configure`) for a checkout of `productId`: its URL (a DeviceError: `invalid_input` for a bad ask or no relay, nothing sent; the relay's refusal). */
export declare function openRelayCheckout(productId: string, options?: {
  metadata?: Record<string, string | number | boolean>;
  email?: string;
  successUrl?: string;
}): Promise<string>;
/** Follows `checkout` until paid and activates the key bought (a PurchaseError, a DeviceError, or a LicenseError for the activation). */
export declare function buy(checkout: string, options?: { successUrl?: string; label?: string }): Promise<Bought>;
/** The rest of a purchase that answered `signIn`, once signed in with the emailed code. */
export declare function buySignedIn(receipt: PurchaseSignIn, options?: { label?: string }): Promise<Bought>;

/** A seat held through the seller's relay (issue #67), as `seatAcquire` and `seatHeartbeat`
 * answer it. */
export interface SeatInfo {
  /** What `seatHeartbeat` and `seatRelease` take. */
  id: string;
  ci: boolean;
  /** When it frees unless heard from (unix seconds: the relay's signed lease's end). */
  expiresAt: number;
  /** When the hold ends on this machine unless renewed (unix milliseconds). */
  endsAtMs: number;
  /** How often the plugin heartbeats it, in seconds (a third of its life). */
  heartbeatEvery: number;
  /** Seats of the key in use, this one with them. */
  inUse: number;
  /** The key's seats. */
  size: number;
}

/** `seatRelease`'s answer: whether the relay still held the seat. */
export interface SeatReleased {
  released: boolean;
}

/** A seat command's error as it crosses the IPC. */
export interface SeatErrorData extends Omit<LicenseErrorData, 'code'> {
  /** A reason code (`seats_full`, `seat_lost`: the lease ended with no renewal, Polar's
   * denial, `invalid_input`, `protocol_error`: a lease that does not verify, `offline`, …) or
   * `seat_gone`. */
  code: ReasonCode | 'seat_gone';
  /** `seats_full`: the seats in use. */
  inUse: number | null;
  /** `seats_full`: the key's seats (for a CI seat, the CI cap). */
  size: number | null;
  /** `seats_full`: when the soonest seat frees (unix seconds). */
  freesAt: number | null;
  /** The plugin holds the seat no more: acquire again (`false`: a held seat is kept). */
  gone: boolean;
}

/** Why a seat command failed (at runtime a subclass of LicenseError). */
export declare class SeatError extends Error implements SeatErrorData {
  readonly name: 'SeatError';
  readonly code: ReasonCode | 'seat_gone';
  readonly class: ReasonClass;
  readonly userMessage: string;
  readonly detail: string;
  readonly hint: string | null;
  readonly field: string | null;
  readonly status: number | null;
  readonly retryAfter: number | null;
  readonly remainingUsages: number | null;
  readonly stopped: Stopped | null;
  readonly inUse: number | null;
  readonly size: number | null;
  readonly freesAt: number | null;
  readonly gone: boolean;
  constructor(data: SeatErrorData);
  toJSON(): SeatErrorData;
}

/** Options of `seatAcquire` and `seat`. */
export interface SeatOptions {
  /** The key (default: the remembered key). */
  key?: string;
  /** The machine binding (default: this machine's fingerprint). */
  machine?: string;
  /** A CI seat. */
  ci?: boolean;
}

/** A seat `seat()` holds: heartbeated by the plugin until released or its hold ends. */
export interface HeldSeat {
  /** The seat as acquired. */
  readonly info: SeatInfo;
  readonly id: string;
  /** `held`, `lost` or `gone` (`onLost` was called), or `released`. */
  readonly state: 'held' | 'lost' | 'gone' | 'released';
  /** Stops the heartbeat and gives the seat back (once; later calls get the same answer). */
  release(): Promise<SeatReleased | { released: false; error: unknown }>;
}

/** Acquires one of the key's seats for this machine (rejects with a SeatError: `seats_full`, …). */
export declare function seatAcquire(options?: SeatOptions): Promise<SeatInfo>;
/** Extends the seat's life now (the plugin also does when the core says; rejects with a
 * SeatError: `seat_lost` or `seat_gone`, `gone`, when the seat is no longer held). */
export declare function seatHeartbeat(seat: string): Promise<SeatInfo>;
/** Gives the seat back. */
export declare function seatRelease(seat: string): Promise<SeatReleased>;
/** The plugin's event when a seat's hold ends without a release. */
export declare const SEAT_ENDED_EVENT: 'polar-license://seat-ended';
/** `SEAT_ENDED_EVENT`'s payload. */
export interface SeatEnded {
  seat: string;
  state: 'lost' | 'gone';
  error: SeatErrorData;
}
/** Holds a seat: heartbeated by the plugin when the core says, released when `signal` aborts;
 * `onLost` is called once when the hold ends without a release (`seat_lost` at the lease's
 * end with no renewal, or `seat_gone`). */
export declare function seat(
  options?: SeatOptions & { signal?: AbortSignal; onLost?: (error: SeatError) => void },
): Promise<HeldSeat>;

/** `recordUsage`'s answer: a report the seller's relay recorded (issue #68). */
export interface UsageRecorded {
  /** The report's idempotency id (the one given, or the one made: a UUID v4). */
  id: string;
  /** Recorded before under this id: counted once. */
  duplicate: boolean;
  /** The meter's balance as the relay knows it after this report; null when not read yet. */
  balance: number | null;
}

/** `recordUsage`'s error as it crosses the IPC. */
export interface UsageErrorData extends Omit<LicenseErrorData, 'code'> {
  /** A reason code (`credits_exhausted`, Polar's denial of the key, `invalid_input`, `offline`,
   * `rate_limited`, …) or `usage_backlog` (too many reports wait at the relay: send it again
   * later with the same `id`; `retryAfter` when the relay said). */
  code: ReasonCode | 'usage_backlog';
  /** `credits_exhausted`: the balance the relay knows (at or below zero); else null. */
  balance: number | null;
  /** The report's idempotency id: sent again with it, the report counts once (`''` when the
   * report was refused before it had one). */
  id: string;
}

/** Why a report was not recorded (at runtime a subclass of LicenseError). */
export declare class UsageError extends Error implements UsageErrorData {
  readonly name: 'UsageError';
  readonly code: ReasonCode | 'usage_backlog';
  readonly class: ReasonClass;
  readonly userMessage: string;
  readonly detail: string;
  readonly hint: string | null;
  readonly field: string | null;
  readonly status: number | null;
  readonly retryAfter: number | null;
  readonly remainingUsages: number | null;
  readonly stopped: Stopped | null;
  readonly balance: number | null;
  readonly id: string;
  constructor(data: UsageErrorData);
  toJSON(): UsageErrorData;
}

/** Options of `recordUsage`. */
export interface UsageOptions {
  /** The event name the seller's meter counts (1 to 128 bytes of printable text). */
  meter: string;
  /** The units used: above 0, at most 1,000,000,000 (NaN, infinities, 0 and negatives are
   * `invalid_input`, nothing sent). */
  units: number;
  /** The app's own idempotency id (1 to 64 of `A-Z a-z 0-9 - _ .`); default a new UUID v4. */
  id?: string;
  /** The key (default: the remembered key). */
  key?: string;
  /** The seller's relay's URL (`relay serve --record-usage`); default the plugin's relay (`relay_url`), else its base URL. */
  relay?: string;
}

/** Reports `units` of `meter` to the seller's relay (rejects with a UsageError). Sent again with
 * the same id (three sends at most) while the relay cannot be reached, answers 5xx or asks to
 * wait: a retried report counts once. */
export declare function recordUsage(options: UsageOptions): Promise<UsageRecorded>;
