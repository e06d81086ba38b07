// polar-license/relay: the seller-run relay as a Web-standard fetch handler.

/** A signing key ready for WebCrypto: `importSigningKey()`'s result. */
export interface RelaySigner {
  /** The key's id, in every lease's footer. */
  kid: string;
  /** The private key: Ed25519, non-extractable, usage `sign`. */
  key: CryptoKey;
  /** `k4.public.…`: what clients put in `relayKeys` after `KID=`. */
  publicKey: string;
}

export interface RelayOptions {
  /** Your Polar organization access token (scope `license_keys:write`). Never logged. */
  accessToken: string;
  /** The `KID=k4.secret.…` text `polar-license relay keygen` writes, or `importSigningKey()`'s result. */
  signingKey: string | RelaySigner;
  /** Polar's base URL (default production, https://api.polar.sh). */
  baseUrl?: string;
  /** `'sandbox'` for https://sandbox-api.polar.sh when `baseUrl` is not given (the store's
   * budget then defaults to the sandbox's 100 calls a minute). */
  server?: 'production' | 'sandbox';
  /** Days a lease lasts offline (1 to 366, default 7), never past the license's `expires_at`. */
  leaseDays?: number;
  /** Answer only this organization's keys (others get Polar's 404 without a call). */
  organizationId?: string;
  /** Per client IP token bucket, `'RATE/BURST'` per second (default `'5/10'`). */
  perIp?: string;
  /** Per license key token bucket (default `'3/6'`). */
  perKey?: string;
  /** Behind a proxy: the header naming the client (its last entry). */
  clientIpHeader?: string;
  /** The web origins (`https://app.example.com`) whose pages may read the answers (the native
   * `--cors-origin`): a named origin gets itself back in `access-control-allow-origin` (with
   * `vary: origin`), any other none. Default: any origin (`*`). */
  corsOrigins?: string[];
  /** The largest request body (default 65536 bytes; larger: 413). */
  maxBodyBytes?: number;
  /** Calls to Polar in a row that failed (unreachable, timed out, a 502, 503 or 504) before the breaker
   * stops calls for `breakerOpenFor` seconds (default 5; 0 turns it off): stored answers are
   * then given at once, others get 502 (the native `--breaker-failures`). */
  breakerFailures?: number;
  /** The longest the breaker stops calls once open, 1 to 3600 seconds (default 30); then one
   * call probes, the first after an eighth of it (the native `--breaker-open-for`). */
  breakerOpenFor?: number;
  /** With webhooks on (`store.webhookSecret`): seconds without a webhook before `/healthz`
   * says `"warning"` and the relay warns in its log, again each such period (default 86400; 0:
   * never; the native `--webhook-silence`). */
  webhookSilence?: number;
  /** Deactivate, through Polar, activations this relay saw validated and has not seen for this
   * many days (and an hour more), a few a minute from the token's budget; 0 (the default):
   * never; at most 3650 (the native `--retire-unseen-days`). The record is kept in the Durable
   * Object's storage per key: once it is woken again, a key's activations are known again at the
   * key's next request (until then, not retired). */
  retireUnseenDays?: number;
  /** The metrics route (Prometheus' text format), off by default: a path of its own, such as
   * `'/metrics'` (not `/healthz`, not one of the relay's routes). Needs `metricsToken`. */
  metricsPath?: string;
  /** The bearer token the metrics route asks for (`authorization: Bearer <metricsToken>`; at
   * least 16 characters; keep it in your host's secrets): 401 without it. */
  metricsToken?: string;
  /** The upstream call's timeout in milliseconds (default 10000; then 502). */
  timeoutMs?: number;
  /** The fetch that asks Polar (default `globalThis.fetch`). */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
  /** The per-IP limit's identity for a request (defaults: see the README). */
  clientIp?: (request: Request, env?: unknown, ctx?: unknown) => string | null | undefined | Promise<string | null | undefined>;
  /** The verdict store (see the README): validates answered from Polar's earlier answers within
   * the organization token's budget, Polar's webhooks on `POST /v1/webhooks/polar`. */
  store?: RelayStoreOptions;
  /** Where the store's changes persist (a Durable Object's: `durableStorage(state.storage)`);
   * without it the store lives in memory. */
  storage?: RelayStorage;
  /** Floating and CI seats (`POST /v1/seats/acquire|heartbeat|release`, with a store), as
   * `relay serve`'s seat flags; the defaults when left out. */
  seats?: RelaySeatOptions;
  /** Sign each customer's Feature Flag values and meter balances into its keys' leases, for
   * clients that ask (issue #68, `relay serve --sign-entitlements`; needs `store`): read from
   * Polar in the background within the budget (the token then needs `benefits:read` and
   * `customer_meters:read`), kept fresh by the benefit and grant webhooks. Default false. */
  signEntitlements?: boolean;
  /** Take apps' usage reports on `POST /v1/usage/record` (issue #68, `relay serve
   * --record-usage`; needs `store`): a report of a key Polar grants is kept in the store (a
   * retried id counted once), ingested to Polar's meters in batches within the budget
   * (`POST /v1/events/ingest`: the token then needs `events:write`), kept while Polar is down.
   * With `signEntitlements` the answer carries the meter's balance. Default false. */
  recordUsage?: boolean;
  /** The seller's rule (`relay serve --refuse-at-zero-credits`; needs `recordUsage` and
   * `signEntitlements`): a report whose meter's balance is at or below zero is refused, 402
   * `credits_exhausted`, and not kept. Polar itself never refuses usage. Default false. */
  refuseAtZeroCredits?: boolean;
  /** Make checkouts for apps on `POST /v1/checkouts/create` (issue #80, `relay serve
   * --checkout-product` and `--checkout-origin`): an app names one of `products` and sends
   * its metadata, the relay makes the checkout with the token (which then needs
   * `checkouts:write`) and answers its `url` and `client_secret`. No product (the default):
   * the route answers 404. */
  checkout?: RelayCheckoutOptions;
}

/** The seller's checkout settings (issue #80). */
export interface RelayCheckoutOptions {
  /** The products an app may buy through the relay (their ids). */
  products: string[];
  /** The origins a checkout's success URL may be on (`https://app.example.com`); none: a
   * request naming a success URL is refused (Polar's own confirmation page is used). */
  successOrigins?: string[];
}

/** The seller's seat settings (issue #67). */
export interface RelaySeatOptions {
  /** Whether the seat routes are served (`relay serve --no-seats` turns them off; default
   * true). Off: every seat route answers 404 and keeps nothing. */
  enabled?: boolean;
  /** A seat's life without a heartbeat, in seconds (30 to 3600; default 300). */
  seconds?: number;
  /** CI seats per key at once, within the key's seats (default: no cap of their own). */
  ciCap?: number;
  /** At most this many acquisitions per key in any `churnSeconds` (0: no limit; at most
   * 1000; default 120). */
  churn?: number;
  /** The churn limit's window in seconds (60 to 86400; default 3600). */
  churnSeconds?: number;
  /** At most this many activations and deactivations together per key in any
   * `activationChurnSeconds`, let through to Polar (0: no limit; at most 1000; default 30). */
  activationChurn?: number;
  /** The activation churn limit's window in seconds (60 to 86400; default 3600). */
  activationChurnSeconds?: number;
  /** Lend a floating seat for offline use for at most this many days (1 to 90; default 0, no
   * borrowing): an acquisition with `borrow_days`. */
  borrowDays?: number;
  /** Seats per key by benefit id, instead of the key's `limit_activations`. */
  perBenefit?: Record<string, number>;
}

export interface RelayStoreOptions {
  /** A stored grant younger than this (seconds, default 300) answers with no call. */
  freshFor?: number;
  /** When Polar cannot be asked, a stored answer younger than this (default 86400) answers. */
  staleFor?: number;
  /** A stored denial younger than this (default 60) answers with no call. */
  denialFor?: number;
  /** An entry marked stale (a webhook's change, a deactivation or a usage increment through
   * the relay) answers while Polar cannot be asked for at most this long after its mark
   * (seconds, default 3600), instead of `staleFor` (the native `--marked-stale-for`). */
  markedStaleFor?: number;
  /** The organization token's calls per minute (default 500; 100 with `server: 'sandbox'`),
   * never exceeded. */
  budget?: number;
  /** Of the budget, the calls kept for activations (default a quarter). */
  budgetReserve?: number;
  /** Entries kept at most (default 1000000). */
  maxEntries?: number;
  /** The store's bytes at most (default 67108864, 64 MiB; the native `--store-max-bytes`):
   * past it refused and unknown keys' stored denials go first, then the oldest grants; a
   * revocation a webhook told of is never evicted (a new answer is then passed on unstored). */
  maxBytes?: number;
  /** With a storage read per key (`durableStorage`): the entries and index rows held in memory
   * at most (default 10000); the others stay in the storage and are read when a request
   * touches them. */
  cacheEntries?: number;
  /** Polar's webhook secret (`whsec_…`): turns on `POST /v1/webhooks/polar`. */
  webhookSecret?: string;
  /** Know the organization's license keys (`relay serve`'s roster; the token needs
   * `license_keys:read`, else one warning and only the keys Polar granted through the relay
   * count as known): their SHA-256 paged in from Polar with spare budget, kept current from
   * the grant webhooks; a key it does not know spends only `firstSeenShare` of the budget
   * (default true since issue #52; `false` is `relay serve --no-roster`: every key may spend
   * the whole budget). */
  roster?: boolean;
  /** With `roster`: the percent of the budget keys it does not know may spend, shared fairly
   * per client (0 to 100, default 10); past it they are answered 429 (`--first-seen-share`). */
  firstSeenShare?: number;
  /** Ask Polar again by id (`GET /v1/license-keys/{id}`, with idle budget only; the token
   * needs `license_keys:read`) about each stored grant's key once its last check is this many
   * seconds old, and narrow its entries when Polar says it is revoked, disabled, expired,
   * rotated or gone: a missed webhook's revocation is heard within about this long
   * (`relay serve --reconcile-every`; default 600, 0 turns it off). */
  reconcileEvery?: number;
}

/** One change of the store, as `RelayStorage.save` receives it. */
export type RelayStoreItem =
  | { op: 'put'; id: string; entry: unknown }
  | { op: 'delete'; id: string }
  | { op: 'webhook'; id: string; at: number }
  | { op: 'forget'; id: string }
  /** The token budget's calls of its last minute and Polar's 429: keep the last one saved, so
   * that a relay started again does not spend inside Polar's window what was spent. */
  | { op: 'budget'; state: string }
  /** With a storage read per key: an entry's index link (`i:<tag>|<id>`; `i:t:<time>|<id>`, the
   * time row, oldest first) added or removed, and the count of entries (`n:entries`). */
  | { op: 'link' | 'unlink'; tag: string; id: string }
  | { op: 'count'; n: number };

export interface RelayStorage {
  /** What was saved (`put`, `webhook` and the last `budget` items), at start. */
  load?(): Promise<RelayStoreItem[]>;
  /** Changes, in order; an answer is sent only once its changes are saved. A save that
   * rejects is tried again, its changes with the next; one that resolves with `[key, why]`
   * pairs names values the storage refused for good (durableStorage's: past a Durable
   * Object's 128 KiB a value): those are dropped and logged once, never tried again. */
  save?(items: RelayStoreItem[]): Promise<void | [string, string][]>;
  /** `true` (durableStorage's): read per key with `get`, `list`, `put` and `delete` (or `write`) below (the keys the
   * relay's core names: its layout), never whole; `load` and `save` are then not used. */
  paged?: true;
  /** The values saved under these keys (a key not saved is absent). */
  get?(keys: string[]): Promise<Map<string, unknown>>;
  /** The keys saved under `prefix` with their values, in key order, those after `after`, at most `limit`. */
  list?(page: { prefix: string; after?: string; limit?: number }): Promise<Map<string, unknown>>;
  /** Stores these values (durableStorage's: one call of the object's storage; the relay hands
   * at most 128). A call that rejects is written again key by key, and the relay's core judges
   * from the errors (their `name`: `RangeError`, `TypeError`, `DataCloneError` mean never
   * storable) which values are dropped for good. */
  put?(entries: Record<string, unknown>): Promise<void>;
  /** Deletes these keys (at most 128 a call). */
  delete?(keys: string[]): Promise<void>;
  /** A storage without `put` and `delete`: writes `[key, value]` pairs (`null`: the key
   * deleted), in order, each call as the relay's core batches them; resolves with the `[key,
   * why]` pairs of values refused for good, if any. */
  write?(writes: [string, unknown][]): Promise<void | [string, string][]>;
  /** The storage's alarm (durableStorage's: the object's): the relay sets it for its next work
   * between requests, unless one rings sooner, and `Relay.alarm()` runs that work. */
  getAlarm?(): Promise<number | null>;
  setAlarm?(at: number): Promise<void>;
  /** Asks for `Relay.alarm()` in `ms` (a storage without `getAlarm`/`setAlarm`); without
   * either, a timer. */
  wake?(ms: number): Promise<void>;
}

export interface Relay {
  /** The handler: `export default { fetch: relay.fetch }`, `Deno.serve(relay.fetch)`, `Bun.serve({ fetch: relay.fetch })`. */
  fetch(request: Request, env?: unknown, ctx?: unknown): Promise<Response>;
  /** Loads the wasm and checks the options and the key now (rejects with what is wrong). */
  ready(): Promise<{ kid: string; publicKey: string }>;
  /** The work between requests (the roster's and the reconcile's reads of Polar) due now: a Durable Object's alarm. */
  alarm(): Promise<void>;
  /** Stops the work between requests for good (its timer and its reads of Polar: a node, Bun or Deno process that
   * made a relay and is done with it); resolves once the run under way has ended. Requests are still answered. */
  close(): Promise<void>;
  /** The relay's answer when its host failed around it (`origin`: the request's `Origin`, if any): a 500 with the
   * core's CORS grant, narrowed to `corsOrigins` as every answer of the relay is (createNodeListener's for a request
   * it could not read). */
  failed(origin?: string): Promise<Response>;
}

/** A relay around the Rust relay's core; nothing is loaded or checked until the first request or `ready()`. */
export function createRelay(options: RelayOptions): Relay;

/** Reads `KID=k4.secret.…` (with the relay core's reader) into a non-extractable WebCrypto Ed25519 key, checking its halves match. */
export function importSigningKey(text: string, subtle?: SubtleCrypto): Promise<RelaySigner>;

/** Workers only: a Durable Object's storage (`state.storage`) as `RelayStorage`, read per key. */
export function durableStorage(storage: unknown): RelayStorage;

/** Workers only: the Durable Object class holding the verdict store; `optionsOf(env)` gives
 * createRelay's options (its `store` options included). */
export function relayStore(optionsOf: (env: any) => RelayOptions): new (state: any, env: any) => { fetch(request: Request): Promise<Response>; alarm(): Promise<void> };

/** Workers only: the Worker's handler, every request sent to the Durable Object bound as
 * `binding` (default `POLAR_RELAY_STORE`); without that binding, a relay without a store. */
export function relayWorker(
  optionsOf: (env: any) => RelayOptions,
  where?: { binding?: string; name?: string },
): { fetch(request: Request, env: any, ctx?: unknown): Promise<Response> };

/**
 * node only (`polar-license/relay` under node): a `node:http` request listener around the
 * handler, `http.createServer(createNodeListener(relay))` (typed loosely, so that these
 * declarations need no @types/node).
 */
export function createNodeListener(relay: Relay): (req: unknown, res: unknown) => void;
