// Types of polar-license (hand-written; checked by tests/js/types.ts with `tsc --noEmit`).

/** Why a key stopped (a denial's detail from the seller's relay, issue #68). */
export type StopKind = 'paused' | 'canceled' | 'seat_revoked' | 'refunded' | 'rotated' | 'past_due';

/** A denial's detail: what stopped the key, and its dates (unix seconds, `null` when unknown). */
export interface Stopped {
  readonly kind: StopKind;
  /** When it happened (paused, ended, removed, refunded, rotated, went past due). */
  readonly at: number | null;
  /** For `paused`: when the subscription resumes, if Polar said. */
  readonly until: number | null;
  /** Whether the key may license again as it is (resumed, renewed, re-seated, paid): worth
   * checking again. The core's word (`StopKind::comes_back`); absent from older engines. */
  readonly again?: boolean;
}

/**
 * An entitlement's value (issue #68): a Feature Flag value Polar grants the key, as the seller's
 * relay signed it into the lease (Polar's metadata values: string, integer, float, boolean).
 */
export type EntitlementValue = string | number | boolean;

/** A reason the server said no. A denial is never covered by the offline grace. */
export type DenialCode =
  | 'not_found'
  | 'inactive'
  | 'expired'
  | 'conditions_mismatch'
  | 'benefit_mismatch'
  | 'customer_mismatch'
  | 'usage_exhausted'
  | 'activation_limit'
  | 'activations_not_supported';

/** No trustworthy answer (the grace cache answers these while it can). */
export type UnverifiedCode =
  | 'offline'
  | 'rate_limited'
  | 'server_error'
  | 'grace_expired'
  | 'clock_rollback'
  | 'not_yet_verified'
  | 'replayed'
  | 'seats_full'
  | 'credits_exhausted'
  | 'seat_lost';

/**
 * Why a `check()` answered from the cache although Polar was asked: nothing that is Polar's
 * verdict came back (it could not be reached, limited the rate, failed, or answered something
 * that is not Polar's, such as a captive portal's page).
 */
export type FallbackCode = 'offline' | 'rate_limited' | 'server_error' | 'protocol_error';

/** A wrong request, a wrong answer or a broken storage; retrying will not help. */
export type ErrorCode = 'protocol_error' | 'invalid_input' | 'cache_error' | 'load_error';

/** Every stable reason code (docs/interfaces.md §1). */
export type ReasonCode = DenialCode | UnverifiedCode | ErrorCode;

/** The class of a reason code. */
export type ReasonKind = 'denied' | 'unverified' | 'error';

/** Every reason code and its kind. */
export declare const REASONS: Readonly<Record<ReasonCode, ReasonKind>>;

/** What an error of the relay's add-ons (polar-license/seat's SeatError, polar-license/usage's
 * UsageError) says beside its code. */
export interface AddOnErrorWords {
  readonly kind: ReasonKind;
  readonly detail: string;
  /** A sentence for the person using the app (the core's sentence and next step). */
  readonly userMessage?: string;
  /** Its next step alone (the core's). */
  readonly nextStep?: string;
  readonly status?: number;
  toJSON(): Record<string, unknown>;
}

/** Why a call did not succeed. Every promise of this package rejects with one. */
export declare class LicenseError extends Error {
  readonly name: 'LicenseError';
  /** The stable reason code. */
  readonly code: ReasonCode;
  /** `denied`, `unverified` or `error`. */
  readonly kind: ReasonKind;
  /** Polar's `detail` text for a denial, else ours. */
  readonly detail: string;
  /** The HTTP status, when there was one (denials, `server_error`, `protocol_error`). */
  readonly status?: number;
  /** For `invalid_input`: the field at fault, e.g. `organization_id` or `activation_id`. */
  readonly field?: string;
  /** For `rate_limited`: seconds to wait, when the server said (and CORS let us read it). */
  readonly retryAfter?: number;
  /** For `usage_exhausted`: the usages left. */
  readonly remainingUsages?: number;
  /** For `offline`: `true` when the timeout ran out. */
  readonly timeout?: boolean;
  /**
   * `false` when a `check()`, `activate()` or `validate()` could not write what it learned to
   * the storage (the answer stands; a later check may not see it). Absent otherwise.
   */
  readonly cacheRefreshed?: false;
  /** From `checkInBackground`: `true` when Polar is being asked and `onFresh` will be called. */
  readonly pending?: boolean;
  /**
   * For a denial: `true` when this install had a good verdict for the key before. A key the
   * merchant or the customer rotated answers `not_found` exactly like an unknown one, and a
   * refunded one `inactive`: this tells them apart from a typo. Absent otherwise.
   */
  readonly previouslyValid?: true;
  /**
   * For a deactivate's `not_found` about a key this install knows is good: the activation is
   * what is gone (freed from another device or the customer portal), not the key; `hint` and
   * `userMessage` say so. Absent otherwise.
   */
  readonly activationGone?: true;
  /** With `previouslyValid`: a sentence for the user (what probably happened, where to look). */
  readonly hint?: string;
  /**
   * For a denial through the seller's relay: why the key stopped, as Polar's webhooks told the
   * relay (issue #68). An addition beside `code`, which stays what Polar's answer gives; the
   * denial stays re-checkable (a resumed subscription licenses again at the next check).
   * Absent otherwise.
   */
  readonly stopped?: Stopped;
  /** `true` when the customer portal is the place for the next step (renew, free a device,
   * find the new key): the core's word (`Denial::offers_portal`), so a face offers the portal
   * link without a reason list of its own. Absent otherwise. */
  readonly portal?: true;
  /**
   * A short sentence to show the person using the app ("Polar could not be reached: a network
   * login page or a proxy may be in the way. …"), for every answer the WebAssembly decided
   * (the same text as the native faces); `detail` and `code` are for logs.
   */
  readonly userMessage?: string;
  /** The next step of `userMessage` alone (the core's words), for a screen that shows the
   * sentence and the step apart. */
  readonly nextStep?: string;
  /**
   * With `released`, on a denial: `false` (no fallback for this build); `paidThrough` is the
   * date the key was paid through, `null` when none is known.
   */
  readonly fallback?: false;
  /** With `released`, on a denial: the paid-through date (unix seconds), `null` when unknown. */
  readonly paidThrough?: number | null;
  /**
   * With `trial`, on a check with no key and none remembered: the local trial (`local: true`).
   * The rejection is the no-key answer (`invalid_input`, field `key`) or `clock_rollback`;
   * while `trial.state` is `'active'` the app runs as a trial.
   */
  readonly trial?: Trial;
  constructor(code: ReasonCode, detail: string, extras?: Partial<LicenseError>);
  /**
   * Plain data, safe for JSON and structured clone (Electron's IPC keeps only an Error's
   * `message`): `name`, `code`, `kind`, `message`, `detail` and the optional fields it has.
   */
  toJSON(): LicenseErrorData;
}

/** A {@link LicenseError} as plain data (`err.toJSON()`). */
export type LicenseErrorData = Omit<LicenseError, 'toJSON' | 'stack' | 'cause'>;

/** A metadata value Polar accepts (`conditions`, `meta`). */
export type MetaValue = string | number | boolean;
/** A `conditions` or `meta` object: at most 50 keys of 1–40 characters. */
export type Metadata = Record<string, MetaValue>;

/** Strings by name, sync or async: an Electron main process can keep them in a file. */
export interface StorageAdapter {
  get(name: string): string | null | undefined | Promise<string | null | undefined>;
  set(name: string, value: string): void | Promise<void>;
  remove(name: string): void | Promise<void>;
}

/** A Web Storage object such as `localStorage` or `sessionStorage`. */
export interface WebStorageLike {
  getItem(name: string): string | null;
  setItem(name: string, value: string): void;
  removeItem(name: string): void;
}

/** Grace policy in seconds (docs/interfaces.md §4a). */
export interface GracePolicy {
  /** A good verdict younger than this answers `check` with no request. Default 3600. */
  revalidateAfter?: number;
  /** How long after the last good online verdict an unreachable server still licenses. Default 604800. */
  gracePeriod?: number;
  /** How far the clock may move back before `clock_rollback`. Default 600. */
  clockTolerance?: number;
}

/** The benefit ids (UUID v4) that grant one feature, and whether it is metered. */
export type FeatureEntry =
  | string[]
  | {
      benefits: string[];
      /** Granted only while the key's `usage` is below its `limitUsage` (when it has one). */
      metered?: boolean;
    };

/**
 * Feature name → the benefits (Polar tiers) that grant it. A feature can come from several
 * benefits; a benefit can grant several features. Names have 1–64 characters, no leading or
 * trailing spaces; each entry needs at least one benefit id. A bad entry rejects the client's
 * first call with `invalid_input`, `field` `entitlements.<name>`.
 */
export type FeatureMap = Record<string, FeatureEntry>;

/** Why a feature is, or is not, granted. */
export type FeatureWhy =
  | 'granted'
  | 'license_not_valid'
  | 'not_granted_by_benefit'
  | 'unknown_feature'
  | 'usage_exhausted';

/** Granted: the key's benefit grants the feature (and, if metered, usages are left). */
export interface FeatureGranted {
  feature: string;
  granted: true;
  why: 'granted';
  licenseReason: null;
  /** For a metered feature on a key with a usage limit: the usages left; else `null`. */
  remainingUsage: number | null;
  /** Where the licensed verdict came from: Polar just now, or the cache within the grace. */
  source: 'online' | 'cache';
}

/** Not granted, and why. */
export interface FeatureDenied {
  feature: string;
  granted: false;
  why: Exclude<FeatureWhy, 'granted'>;
  /** For `license_not_valid`: the license's own reason (a denial or an unverified code). */
  licenseReason: DenialCode | UnverifiedCode | null;
  /** For `usage_exhausted`: the usages left (0 or less); else `null`. */
  remainingUsage: number | null;
  /** Where the licensed verdict came from; `null` when the license is not valid. */
  source: 'online' | 'cache' | null;
}

/** The answer to "may this copy use feature X?". Test `granted`; the rest says why. */
export type FeatureAccess = FeatureGranted | FeatureDenied;

/** What the `fetch` option is called with: a subset of the global `fetch`'s `RequestInit`. */
export interface FetchInit {
  method: 'POST';
  headers: [string, string][];
  /** The JSON request body. */
  body: string;
  /** Redirects are never followed (a redirect is not Polar's answer). */
  redirect: 'manual';
  /** An `AbortSignal`: aborted when the timeout passes. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  signal: any;
}

export interface LicenseClientOptions {
  /** Your Polar organization id (a UUID v4). */
  organizationId: string;
  /** `production` (default) or `sandbox`. */
  server?: 'production' | 'sandbox';
  /** Overrides `server`: `https://…`, or `http://` on a loopback host (an emulator). */
  baseUrl?: string;
  /** Whole-request timeout in seconds (default 10, at most 600). */
  timeout?: number;
  /** When to ask Polar and how long a cached verdict stays good. */
  gracePolicy?: GracePolicy;
  /**
   * Where the offline cache lives. Default: in node, Bun, Deno and Electron's main process
   * `file` (the native library's cache directory and format); elsewhere `localStorage` where
   * there is one (browsers, Electron renderers), else `indexedDB` (workers, service workers),
   * else `memory` (one store per realm). Or your own adapter. `status().storage` says which one
   * a client uses.
   */
  storage?: 'file' | 'localStorage' | 'indexedDB' | 'memory' | StorageAdapter | WebStorageLike;
  /**
   * The file store's directory (default `<local data dir>/polar-license/<appId>`, as natively:
   * `~/.local/share/…` on Linux, `~/Library/Application Support/…` on macOS, `%LOCALAPPDATA%\…`
   * on Windows). Node entries only.
   */
  cacheDir?: string;
  /**
   * The application id naming the default file store directory: 1-64 ASCII letters, digits,
   * `.`, `-` or `_` (e.g. `com.example.editor`). Default: the main script's file name.
   */
  appId?: string;
  /** A secret of your app's, mixed into the cache MAC (optional). */
  appSecret?: string;
  /** Binds activations to this machine id (hashed with the organization id). */
  machineId?: string;
  /**
   * `check` rejects with `invalid_input` (field `activation_id`) and no request when no
   * activation is remembered for the key on this client's storage (default `false`: Polar
   * validates a bare key even when it has activation slots).
   */
  requireActivation?: boolean;
  /** Perpetual fallback: this build's release date, `'YYYY-MM-DD'` (see the README). */
  released?: string;
  /** Trials: your trial products' benefit id(s); `check` then reports `trial`. */
  trialBenefit?: string | readonly string[];
  /**
   * Trials: a local trial of this many days (a whole number from 1 to 3650). A `check()` with
   * no key and none remembered then starts or reads it and rejects with its `trial` (see
   * {@link LicenseError.trial}); a key from a `trialing` subscription is reported as a trial.
   * Its code is an add-on (`polar_license_trial_bg.wasm`) loaded only by that check: the
   * `polar-license/inline` entries carry none (that check rejects with `load_error`).
   */
  trial?: number;
  /**
   * Remember the key of every good `activate` in this client's storage, sealed as natively
   * (default `false`), so `check()` needs no key; a good `deactivate` of that key forgets it.
   * `rememberKey` remembers a key of your choice either way.
   */
  rememberKeys?: boolean;
  /** The clock in milliseconds since 1970 (default `Date.now`). For tests. */
  clock?: () => number;
  /**
   * The `fetch` that sends the requests to Polar (default: the global `fetch`), called like it:
   * Electron's `net.fetch` (the system proxy and certificate store), or undici's `fetch` with a
   * `ProxyAgent` dispatcher in node behind a proxy. A throw, a rejection or anything that is not
   * a readable `Response` is a failure to reach Polar (the grace cache answers), never a denial.
   */
  fetch?: (url: string, init: FetchInit) => Promise<unknown>;
  /** The entitlement map `hasFeature` answers from: feature name → benefit ids. */
  features?: FeatureMap;
  /**
   * Signed mode: the public keys of your relay (`polar-license relay keygen` prints one), each
   * `'KID=k4.public.…'`, as an array or one comma-separated string (two keys while you rotate;
   * at most 8). Point `baseUrl` at the relay. The cache then licenses offline only within a
   * lease the relay signed that verifies with one of these keys, and an online grant without
   * one is `protocol_error`. A bad entry rejects every call with `invalid_input` (field
   * `relay_keys`) before any request. An empty list is unsigned mode.
   */
  relayKeys?: string | readonly string[];
  /**
   * Self-healing activations (issue #80): your relay's URL (`https://`, or `http://` on
   * loopback). With `machineId`, an `activate` that meets the activation limit lists the key's
   * activations through the relay and, when one of them is this machine's own (a reinstall,
   * a wiped storage), uses it: the answer is that activation, and no new one is taken. In
   * signed mode the relay at `baseUrl` is asked without it. A bad URL rejects every call with
   * `invalid_input` (field `relay_url`).
   */
  relay?: string;
  /**
   * Where Polar's customer portal and checkouts are (sign-in, devices, the customer's keys,
   * key rotation, buying in the app), when `baseUrl` is not Polar: in signed mode `baseUrl` is
   * your relay, which serves none of them, so set this to Polar's (`https://api.polar.sh`, or
   * the emulator while developing). `polar-license/devices` takes it too (the gate passes its
   * `options` on). A bad URL rejects every call with `invalid_input` (field
   * `portal_base_url`).
   */
  portalUrl?: string;
}

/**
 * The relay's signed lease stored with the key's last good verdict, when it verifies with the
 * client's `relayKeys` (signed mode): the cache licenses offline until `expiresAt` at most.
 */
export interface Lease {
  /** The relay key that signed it. */
  kid: string;
  /** When it ends, unix seconds. */
  expiresAt: number;
}

export interface Address {
  line1: string | null;
  line2: string | null;
  postalCode: string | null;
  city: string | null;
  state: string | null;
  country: string;
}

export interface Customer {
  id: string;
  createdAt: string;
  modifiedAt: string | null;
  metadata: Metadata;
  externalId: string | null;
  email: string | null;
  emailVerified: boolean;
  type: 'individual' | 'team' | 'other';
  name: string | null;
  billingName: string | null;
  billingAddress: Address | null;
  taxId: [string, string] | null;
  locale: string | null;
  organizationId: string;
  defaultPaymentMethodId: string | null;
  deletedAt: string | null;
  firstUserEventAt: string | null;
  avatarUrl: string | null;
}

/** A license key as Polar returned it, in camelCase. Timestamps are RFC 3339 strings. */
export interface License {
  id: string;
  createdAt: string;
  modifiedAt: string | null;
  organizationId: string;
  customerId: string;
  customer: Customer;
  benefitId: string;
  key: string;
  displayKey: string;
  status: 'granted' | 'revoked' | 'disabled';
  limitActivations: number | null;
  usage: number;
  limitUsage: number | null;
  validations: number;
  lastValidatedAt: string | null;
  expiresAt: string | null;
  /** Polar API version 2027-01 and later (absent when Polar sent none): the seat holder. */
  memberId?: string;
  member?: Member;
  /** 2027-01 and later: the subscription the key was granted through. */
  subscriptionId?: string;
  subscription?: Subscription;
  /** 2027-01 and later: the order the key was granted through. */
  orderId?: string;
  order?: Order;
}

/** The seat holder a key is assigned to (2027-01 and later). */
export interface Member {
  id: string;
  email: string | null;
  externalId: string | null;
}

/** The subscription a key was granted through (2027-01 and later). Timestamps are RFC 3339. */
export interface Subscription {
  id: string;
  /** `active`, `trialing`, `past_due`, `canceled`, … as Polar sent it. */
  status: string;
  currentPeriodStart: string | null;
  currentPeriodEnd: string | null;
  /** The customer cancelled: the subscription ends at the period end. */
  cancelAtPeriodEnd: boolean;
  endsAt: string | null;
}

/** The order a key was granted through (2027-01 and later). */
export interface Order {
  id: string;
  createdAt: string | null;
  /** `paid`, `pending`, `refunded`, `partially_refunded`, … as Polar sent it. */
  status: string;
  paid: boolean;
}

export interface Activation {
  id: string;
  licenseKeyId: string;
  label: string;
  meta: Metadata;
  createdAt: string;
  modifiedAt: string | null;
}

export interface ValidateOptions {
  activationId?: string;
  benefitId?: string;
  customerId?: string;
  incrementUsage?: number;
  conditions?: Metadata;
}

export interface ActivateOptions {
  label?: string;
  conditions?: Metadata;
  meta?: Metadata;
}

export interface DeactivateOptions {
  /** Default: the activation this client remembered when it activated. */
  activationId?: string;
}

export interface ValidateResult {
  license: License;
  activation: Activation | null;
  /** The stored lease that verifies (signed mode); `null` without one and in unsigned mode. */
  lease: Lease | null;
  /**
   * May this copy use feature `name`, by this verdict and the client's `features` map? Computed
   * when the verdict was obtained (a metered count is the verdict's). Non-enumerable: not in
   * `JSON.stringify` or a structured clone of the result.
   */
  hasFeature(name: string): FeatureAccess;
  /** Plain data, safe for JSON and structured clone (e.g. across Electron's IPC). */
  toJSON(): ValidateResultData;
}

/**
 * A verdict as plain data (`result.toJSON()`): its fields, and `features`, the answer of
 * `hasFeature` for every feature of the client's `features` map.
 */
export type ValidateResultData = Omit<ValidateResult, 'hasFeature' | 'toJSON'> & {
  features: Record<string, FeatureAccess>;
};

/** A trial (the native `Trial`); times in unix seconds. */
export interface Trial {
  local: boolean;
  state: 'active' | 'ended' | 'refused';
  startedAt: number | null;
  endsAt: number | null;
  daysLeft: number;
}

export interface CheckResult extends ValidateResult {
  /** `online`: Polar answered just now; `cache`: the offline cache answered. */
  source: 'online' | 'cache';
  /** For a cache answer: seconds of grace left; `null` when online. */
  graceRemaining: number | null;
  /** When the verdict was obtained online, unix seconds. */
  verifiedAt: number;
  /**
   * When this verdict's grace ends, unix seconds: past it an unreachable Polar no longer
   * licenses (`grace_expired`); an online answer before then moves it.
   */
  graceEndsAt: number;
  /** What to tell the person, the library's words (as every face says them): licensed, or
   * licensed from the cache for the grace left while Polar cannot be reached. */
  userMessage: string;
  /**
   * For a cache answer after Polar was asked: what happened online (e.g. `offline` for an
   * unreachable Polar, `protocol_error` for a captive portal's page). `null` when Polar
   * answered, or when the cache answered with no request.
   */
  reason: FallbackCode | null;
  /**
   * `false` when the storage could not be written: the answer stands, but the cache does not
   * hold what this check learned (a cached answer that cannot be recorded makes the check ask
   * Polar instead).
   */
  cacheRefreshed: boolean;
  /** With `released`: licensed only as a fallback (the key expired: offer the upgrade). */
  fallback?: boolean;
  /** With `released`: the end of the paid time (unix seconds), `null` when none. */
  paidThrough?: number | null;
  /** With `trialBenefit`: the key's trial, `null` when it is none. */
  trial?: Trial | null;
  /**
   * For an online answer through a seller's relay: where the relay took Polar's verdict from,
   * as its `polar-license-source` header said (`polar`: asked just now; `store`: its store;
   * `stale`: a stored grant replayed while Polar could not be asked). `null` without a relay,
   * and for the cache's answers.
   */
  relaySource: 'polar' | 'store' | 'stale' | null;
  /**
   * The entitlement values the seller's relay signed into this answer's lease (issue #68), by
   * name; `null` when not known (unsigned mode, a relay that signs none or had not read them
   * yet). `{}`: the key is granted none.
   */
  entitlements: Record<string, EntitlementValue> | null;
  /** From `checkInBackground`: `true` when Polar is being asked and `onFresh` will be called. */
  pending?: boolean;
  /** Plain data, safe for JSON and structured clone (e.g. across Electron's IPC). */
  toJSON(): CheckResultData;
}

/** A check's verdict as plain data (`result.toJSON()`): see {@link ValidateResultData}. */
export type CheckResultData = Omit<CheckResult, 'hasFeature' | 'toJSON'> & {
  features: Record<string, FeatureAccess>;
};

export interface ActivateResult {
  activation: Activation;
  license: License;
  /** The stored lease that verifies (signed mode); `null` without one and in unsigned mode. */
  lease: Lease | null;
}

export interface DeactivateResult {
  activationId: string;
  /** What to tell the person: the seat is free (the library's words). */
  userMessage: string;
}

export interface CacheStatus {
  state: 'empty' | 'untrusted' | 'present';
  /**
   * Why a stored record is not trusted (it is then treated as no cache): edited or sealed with
   * other keys, not a record, another format version, or older than the newest record
   * written here (a saved copy put back).
   */
  untrusted: 'bad_mac' | 'malformed' | 'unknown_version' | 'replayed' | null;
  /** The clock reading used, unix seconds. */
  now: number;
  /** Seconds the cache could still license if Polar were unreachable now. */
  graceRemaining: number | null;
  /** Seconds the clock moved back past the tolerance, if it did. */
  clockRollback: number | null;
  /**
   * What the cache says of the key now, the same word on every face: `licensed` (a check
   * would license from the cache now), `denied` (Polar's last answer about the key, whichever
   * call saw it, was a denial: see `denied`), `lapsed` (a good verdict that can no longer
   * license from the cache) or `none`.
   */
  standing: 'none' | 'denied' | 'licensed' | 'lapsed';
  /**
   * Whether the records and the remembered key are sealed with a machine's identity, so that a
   * copy of the storage opens to nothing on another machine: the OS machine id in node, Bun,
   * Deno and Electron's main process (every store), the `machineId` option anywhere. A browser
   * has no machine id: there it is `false` unless the app passes `machineId`.
   */
  sealedToMachine: boolean;
  /** When the last good verdict was had (history, also after a denial). */
  verifiedAt: number | null;
  /**
   * The last good license (with `key` redacted to its display form); `null` since a denial
   * (it is not the key's status any more) and when there was none.
   */
  license: License | null;
  /**
   * The activation the next check validates: the trusted record's, or the one an untrusted
   * record still names (an activation id is no secret: Polar checks it with the key and this
   * machine's conditions).
   */
  activation: { id: string; label: string; conditions: Metadata; createdAt: number } | null;
  denied: { code: DenialCode; detail: string; status: number; at: number } | null;
  blockedUntil: number | null;
  /**
   * The stored lease that verifies with `relayKeys` (signed mode): the cache licenses offline
   * until `lease.expiresAt` at most. `null` without one, and always in unsigned mode.
   */
  lease: Lease | null;
  /** Where this client's cache lives: see `LicenseClientOptions.storage`. */
  storage: 'file' | 'localStorage' | 'indexedDB' | 'memory' | 'custom';
  /** The directory of the `file` storage. */
  cacheDir?: string;
}

/**
 * A client for one Polar organization. Every method resolves only on success and otherwise
 * rejects with a {@link LicenseError}: a fulfilled `check()` always means licensed.
 */
export declare class LicenseClient {
  constructor(options: LicenseClientOptions);
  /**
   * One online validation, no cache answer. With `machineId`, an `activationId` is validated
   * with this machine's fingerprint among the conditions. The answer updates the key's cache:
   * a revocation seen here is the next check's too.
   */
  validate(key: string, options?: ValidateOptions): Promise<ValidateResult>;
  /**
   * Activates and remembers the activation for later checks. A good activation is a verdict:
   * a check right after it answers from the cache, online or not.
   */
  activate(key: string, options?: ActivateOptions): Promise<ActivateResult>;
  /** Deactivates (default: the remembered activation) and forgets it. */
  deactivate(key: string, options?: DeactivateOptions): Promise<DeactivateResult>;
  /**
   * The grace-aware verdict: cache and network as the policy says. Without `key`, the
   * remembered key's (none: `invalid_input`, field `key`, and no request).
   */
  check(key?: string): Promise<CheckResult>;
  /**
   * A check that never waits for Polar: settles at once as `check` would from what is stored
   * (licensed from the cache within the grace, the cached denial, or a `not_yet_verified`
   * rejection), with `pending: true` when Polar is being asked meanwhile; then
   * `onFresh(error, result)` is called once with the fresh answer. Without `key`, the
   * remembered key's.
   */
  checkInBackground(
    key: string | undefined,
    onFresh: (error: LicenseError | null, result: CheckResult | undefined) => void,
  ): Promise<CheckResult>;
  /**
   * Checks `key` (as `check`) and answers for feature `name`. Resolves for every verdict: a
   * denied or unverified license is `{ granted: false, why: 'license_not_valid', licenseReason }`.
   * Rejects only with an error-kind LicenseError (`invalid_input`, e.g. a bad key or `features`
   * map; `protocol_error`; `cache_error`).
   */
  hasFeature(key: string, name: string): Promise<FeatureAccess>;
  /**
   * The value of entitlement `name` as the last check's licensed answer read it from its signed
   * lease, offline (issue #68): `undefined` when the key is granted no such value; `null` when
   * values are not known (unsigned mode: only the seller's relay can read them, with
   * `signEntitlements` / `--sign-entitlements`; a relay that had not read them yet; or the last
   * check did not license). No request.
   */
  entitlement(name: string): EntitlementValue | undefined | null;
  /** What the cache holds for `key`, with no request. */
  status(key: string): Promise<CacheStatus>;
  /** Forgets everything cached for `key` (Polar is not told), the remembered key too if it is this one. */
  forget(key: string): Promise<void>;
  /**
   * Remembers `key` in this client's storage, sealed as the native library seals it (not in
   * plain text; nothing opens it on another install, machine or app), so `check()` needs no
   * key. Checked as every request checks a key (`invalid_input`); no request.
   */
  rememberKey(key: string): Promise<void>;
  /** The remembered key, or `null` (none, or one sealed elsewhere or edited). */
  rememberedKey(): Promise<string | null>;
  /** Forgets the remembered key (its cache record and activation stay). */
  forgetKey(): Promise<void>;
}

/**
 * Loads the WebAssembly module now instead of on first use. Rejects with a `load_error`
 * LicenseError when it cannot be loaded (as does every call then).
 */
export declare function init(): Promise<void>;

/**
 * The package's Ed25519 signature check, the one signed mode verifies the relay's leases with
 * (node:crypto's, the host's WebCrypto, or the package's wasm verifier: the first that passes
 * RFC 8032's vector; issue #38), loaded on the first call. For the package's own modules
 * (polar-license/seat verifies its seat leases with it); rejects with a `load_error` where the
 * host has none.
 */
export declare function hostEd25519(): Promise<(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => Promise<boolean>>;
