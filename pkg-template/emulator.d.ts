// Types of `polar-license/emulator`: a local Polar for node (>= 18), the emulator of
// `polar-license emulator` compiled to WebAssembly, behind a node:http server.

/** A seed: the organization, its license keys and access tokens (the seed file of
 * `polar-license emulator --seed FILE`). Field names as in the seed file. */
export interface Seed {
  organization_id: string;
  license_keys?: SeedKey[];
  access_tokens?: { token: string; organization_id?: string; scopes?: string[] }[];
  /** The organization token's budget, calls per window (0: off; default 500, 100 sandbox). */
  token_budget?: number;
  /** The budget's window in seconds (default 60). */
  token_window_seconds?: number;
}

/** One key of a seed (or of `addKey`): every field but `key` optional. */
export interface SeedKey {
  key: string;
  organization_id?: string;
  status?: 'granted' | 'revoked' | 'disabled';
  limit_activations?: number | null;
  limit_usage?: number | null;
  usage?: number;
  expires_at?: string | null;
  benefit_id?: string;
  customer_id?: string;
  customer_email?: string;
  [field: string]: unknown;
}

/** A merchant-side change to a key, like Polar's `PATCH /v1/license-keys/{id}`. */
export interface KeyUpdate {
  status?: 'granted' | 'revoked' | 'disabled';
  usage?: number;
  limit_activations?: number | null;
  limit_usage?: number | null;
  expires_at?: string | null;
}

/** A failure the emulator injects on the license routes until cleared. */
export type Fault =
  | { kind: 'hang' }
  | { kind: 'delay'; ms: number }
  | { kind: 'slow_body'; ms_per_byte: number }
  | { kind: 'status'; status: number; body: string }
  | { kind: 'rate_limited'; retry_after?: number | null }
  | { kind: 'malformed' }
  | { kind: 'truncated' }
  | { kind: 'huge'; bytes: number }
  | { kind: 'close_immediately' }
  | { kind: 'respond'; status: number; headers?: [string, string][]; body?: string };

export interface EmulatorOptions {
  /** The port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** The address to listen on (default `127.0.0.1`). */
  host?: string;
  /** The organization and keys served, as an object or its JSON text (default: the demo seed
   * of `polar-license emulator`, organization `2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10`, key
   * `DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A` first). */
  seed?: Seed | string;
  /** Polar's public rate limit: 3 requests per second per client, then a block. */
  rateLimit?: boolean;
  /** The block after the rate limit is exceeded, in ms (default 60000). */
  rateLimitBlockMs?: number;
  /** Answer like `sandbox-api.polar.sh` (`X-Polar-Sandbox: 1`). */
  sandbox?: boolean;
  /** The `Polar-Version` of a request that sends none (default `2026-10`). */
  apiVersion?: string;
  /** The `Polar-Version`s served (default `2026-04`, `2026-10`, `2027-01`). */
  apiVersions?: string[];
  /** The organization token's budget: calls per window for all of an organization's tokens on
   * `/v1/license-keys/*` and `/v1/webhooks/*` (default: the seed's, else 500, or 100 with
   * `sandbox`); 0 turns it off. Past it: 429 with an empty body and `retry-after`. */
  tokenBudget?: number;
  /** The budget's window in ms (default: the seed's, else 60000). */
  tokenWindowMs?: number;
  /** Scales Polar's webhook retry schedule (ten tries: at once, then 2 s doubling with
   * 50–100 % jitter, capped at 20 minutes; default 1). */
  webhookTimeScale?: number;
  /** How long one webhook attempt may take, in ms (default 10000). */
  webhookTimeoutMs?: number;
}

/** A failure injected into the webhook deliveries of the next change to a key. */
export type WebhookFault =
  | { kind: 'duplicate' }
  | { kind: 'reorder' }
  | { kind: 'delay'; ms: number }
  | { kind: 'stale_timestamp'; seconds: number }
  | { kind: 'bad_signature' }
  | { kind: 'large'; bytes: number };

export interface RunningEmulator {
  /** The base URL, `http://127.0.0.1:PORT`: `baseUrl` of a `LicenseClient`. */
  readonly url: string;
  readonly port: number;
  /** The seed's organization id. */
  readonly organizationId: string;
  /** The seed's license keys, in its order. */
  readonly keys: string[];
  /** The start-up banner's lines about the seed (one per key, one per access token). */
  readonly banner: string;
  /** Injects a fault on every following license request (`null` clears it). */
  setFault(fault: Fault | null): void;
  /** Adds a key (a string: a granted key with the defaults). */
  addKey(key: SeedKey | string): void;
  /** Changes a key; `false` when it is unknown or a value is invalid. */
  updateKey(key: string, update: KeyUpdate): boolean;
  /** Rotates a key: its new string, the old one is unknown from now on (`undefined`: unknown). */
  rotateKey(key: string): string | undefined;
  /** A new billing period: `benefit_grant.cycled` sent, the key unchanged (Polar does not reset its usage). */
  cycleKey(key: string): boolean;
  /** Sets (`null` clears) the failure of the next change's webhook deliveries. */
  setWebhookFault(fault: WebhookFault | null): void;
  /** The organization token's budget in force. */
  tokenBudget(): { calls: number; windowMs: number };
  /** A key as Polar's `LicenseKeyRead` JSON (`undefined`: unknown). */
  key(key: string): Record<string, unknown> | undefined;
  /** A key's live activations. */
  activations(key: string): Record<string, unknown>[];
  /** License requests received (faults and errors included). */
  requestCount(): number;
  resetRequestCount(): void;
  /** Moves the emulator's clock by whole seconds (expiry, `last_validated_at`, `date`). */
  setClockOffset(seconds: number): void;
  /** Stops serving: the port is free when the promise resolves. */
  close(): Promise<void>;
}

/** Starts a local Polar. */
export function startEmulator(options?: EmulatorOptions): Promise<RunningEmulator>;
