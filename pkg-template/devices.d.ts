// polar-license/devices (issue #64): sign in with the code Polar emails, list a key's devices,
// free one by id. Its wasm loads on the first call; the default entry carries none of it.

/** What a failure is, as the CLI's `portal_error` names it, or a reason code. */
export type DevicesErrorCode =
  | 'code_invalid_or_expired'
  | 'session_expired'
  | 'not_signed_in'
  | 'device_management_off'
  | 'key_not_found'
  | 'rate_limited'
  | 'customer_selection_required'
  | 'refused'
  | 'invalid_input'
  | 'offline'
  | 'server_error'
  | 'protocol_error'
  | 'not_found'
  | 'load_error'
  | (string & {});

/** A typed failure of a devices call. */
export class DevicesError extends Error {
  readonly name: 'DevicesError';
  /** The failure (`session_expired`: sign in again; `device_management_off`: the seller must
   * enable "customers can manage activations", `enable_customer_admin`; …). */
  readonly code: DevicesErrorCode;
  /** The reason code (docs/interfaces.md §1), or null for the portal's own refusals. */
  readonly reason: string | null;
  /** The input at fault, for `invalid_input`. */
  readonly field?: string;
  /** For `rate_limited`: the seconds to wait, when Polar said. */
  readonly retryAfter?: number | null;
  /** For `customer_selection_required`: the customers with this email. */
  readonly customers?: { id: string; name: string | null }[];
  /** For Polar's refusal of a free: its HTTP status. */
  readonly status?: number;
  /** What to tell the person: the core's one sentence and next step as one line (every face's
   * words for this failure). */
  readonly userMessage?: string;
  /** The one next step of `userMessage`, alone (a purchase's `key_issuing`: try again in a
   * minute). */
  readonly nextStep?: string;
}

/** One device (a live activation) of a key. */
export interface Device {
  /** The activation id (what `free` takes). */
  id: string;
  /** The label it was activated with. */
  label: string;
  /** When it was activated, unix seconds. */
  activatedAt: number;
  /** The activation this machine holds (the `activationId` given to `list`). */
  thisMachine: boolean;
  /** The platform family its activation recorded (`linux/x86_64`, …), to tell devices
   * apart; `null` when it recorded none. */
  platform: string | null;
  /** When the seller's relay last saw it validated, unix seconds (as `activatedAt`); `null`
   * when not known. */
  lastSeen: number | null;
}

/** A key's devices. */
export interface DeviceList {
  /** The key record's id. */
  keyId: string;
  /** The key's activation limit (null: none). */
  limitActivations: number | null;
  /** Its live devices, oldest first. */
  devices: Device[];
  /** With no device: the library's words for it (why, and what to do). */
  userMessage?: string;
}

/** A key the signed-in customer can activate here (key recovery). */
export interface RecoverableKey {
  /** The key record's id. */
  id: string;
  /** Polar's display form (`****-6ED415`): what to show. */
  displayKey: string;
  /** The whole key, for the activation only (not enumerable: never in JSON or logs). */
  readonly key: string;
  /** The key's benefit: which product it licenses (Polar's key list names no product). */
  benefitId: string;
  /** When it was made, unix seconds: with the benefit, what tells two keys apart. */
  createdAt: number;
  /** The key's activation limit (null: none). */
  limitActivations: number | null;
  /** When it expires, unix seconds (null: never). */
  expiresAt: number | null;
}

/** `followRotation`'s answer: the rotated key followed to its new string. */
export interface Followed {
  /** The activation the new key was validated with: the one this machine held (no slot taken). */
  activationId: string | null;
  /** The new key took the old one's place as the client's remembered key. */
  remembered: boolean;
  /** The license under its new key (`displayKey` is the new key's). */
  license: {
    /** The key record's id (rotation keeps it). */
    id: string;
    /** Polar's display form of the new key (`****-6ED415`): what to show. */
    displayKey: string;
    benefitId: string;
    /** Unix seconds (null: never). */
    expiresAt: number | null;
  };
  /** The whole new key, for the app's own checks (not enumerable: never in JSON or logs). */
  readonly key: string;
}

/** What `followRotation` reads and writes the cache through: a `LicenseClient` of `polar-license`. */
export interface FollowingClient {
  rememberedKey(): Promise<string | null>;
  rememberKey(key: string): Promise<void>;
}

export interface DevicesOptions {
  /** The organization (UUID v4). */
  organizationId: string;
  /** The server's URL (an emulator, a relay), else `server`. */
  baseUrl?: string;
  /** `'production'` (default) or `'sandbox'`. */
  server?: string;
  /**
   * Where Polar's customer portal and checkouts are when `baseUrl` is not Polar: in signed
   * mode `baseUrl` is the seller's relay, which serves neither (`https://api.polar.sh`, or the
   * emulator while developing).
   */
  portalUrl?: string;
  /**
   * The seller's relay's URL (issue #64): when not signed in, `list` asks the relay, where the
   * key proves it is the customer's (no email code); `openRelayCheckout` asks it for a
   * checkout. In signed mode (`relayKeys` given) the relay at `baseUrl` without it.
   */
  relay?: string;
  /** A `LicenseClient`'s `relayKeys` (signed mode): only whether any are given is read here. */
  relayKeys?: string | readonly string[];
  /** Called like the global fetch (default: the global one). */
  fetch?: typeof fetch;
  /** Each request's time limit, ms (default 30,000). */
  timeoutMs?: number;
}

/** The devices of a key through a customer session, held in memory (never stored or logged). */
export class Devices {
  constructor(options: DevicesOptions);
  /** Whether a session is held. */
  readonly signedIn: boolean;
  /** Asks Polar to email a 6-character code to `email` (resolves for any email). */
  requestCode(email: string, options?: { customerId?: string }): Promise<void>;
  /** Signs in with the emailed code; the session is held for its hour. */
  signIn(code: string): Promise<void>;
  /** Forgets the session. */
  signOut(): void;
  /** The key's devices, `activationId` (this machine's, from a check) marked. */
  list(key: string, options?: { activationId?: string | null }): Promise<DeviceList>;
  /** Key recovery: the signed-in customer's keys this device can activate, newest first. */
  recover(): Promise<RecoverableKey[] & { readonly userMessage?: string }>;
  /** Frees device `activationId` of `key` (no session needed). */
  free(key: string, activationId: string): Promise<void>;
  /**
   * A checkout the seller's relay makes for this app (issue #80): its URL, to open and then
   * follow with `buy`. Rejects `invalid_input` (with `field`) before sending, or with the
   * relay's refusal typed.
   */
  openRelayCheckout(
    productId: string,
    options?: { metadata?: Record<string, string | number | boolean>; email?: string; successUrl?: string },
  ): Promise<string>;
  /**
   * Buying in the app (issue #80): follows the checkout until paid, finds the key bought
   * through the customer session (`sessionToken`, the `successUrl`'s, or this object's), waits
   * while Polar is still issuing it, and activates it with `client` when given; or, with no
   * session, `signIn` (the code was asked for at the checkout's address). Rejects with `code`
   * `key_issuing`, `checkout_expired`, `checkout_failed`, `checkout_not_found`, `not_paid`, or
   * the portal's.
   */
  buy(
    checkout: string,
    options?: { sessionToken?: string; successUrl?: string; receipt?: PurchaseReceipt; client?: unknown; label?: string },
  ): Promise<Purchase>;
  /**
   * Follows a rotated key (default: `client`'s remembered key) through the session to its new
   * string, validated with the activation `client`'s cache remembers (kept: no slot taken); the
   * old string's record forgotten, the new one remembered in its place when the old one was.
   * Rejects with the session's failures, `not_found` (no key of that id, or not rotated),
   * `invalid_input` (field `key`: nothing of its license cached here) or Polar's denial.
   */
  followRotation(client: FollowingClient, options?: { key?: string }): Promise<Followed>;
  toJSON(): { signedIn: boolean };
}

/** `new Devices(options)`. */
export function devices(options: DevicesOptions): Devices;

/** What a purchase without a session hands back: sign in with the emailed code, then buy again with it. */
export interface PurchaseReceipt {
  readonly checkoutId: string;
  readonly email: string | null;
  readonly createdAt: number | null;
  readonly benefitIds: string[];
  readonly userMessage: string;
  readonly nextStep: string;
}

/** A purchase's end: the key bought (activated when a client was given), or a sign-in. */
export interface Purchase {
  readonly key?: { readonly id: string; readonly displayKey: string; readonly benefitId: string; readonly limitActivations: number | null; readonly key: string };
  readonly activation?: unknown;
  readonly signIn?: PurchaseReceipt;
}
