// polar-license/usage (issue #68 item 3): usage reported to the seller's relay with an
// idempotency id. Its wasm loads on the first call; the default entry carries none of it.
import type { AddOnErrorWords, ReasonCode } from 'polar-license';

/** Why a report was not recorded. At runtime a subclass of polar-license's LicenseError
 * (`instanceof LicenseError` holds); declared apart because its `code` may be
 * `usage_backlog`, no reason code. */
export declare class UsageError extends Error {
  readonly name: 'UsageError';
  /** A reason code (`credits_exhausted`, Polar's denial of the key, `invalid_input`,
   * `offline`, `rate_limited`, …) or `usage_backlog` (too many reports wait at the relay: send
   * it again later with the same `id`). */
  readonly code: ReasonCode | 'usage_backlog' | 'load_error';
  /** The input at fault, for `invalid_input` (`meter`, `units`, `id`, `key`, …). */
  readonly field?: string;
  /** `usage_backlog`, `rate_limited`: seconds to wait, when the relay said. */
  readonly retryAfter?: number;
  /** `credits_exhausted`: the balance the relay knows (at or below zero); else null. */
  readonly balance: number | null;
  /** The report's idempotency id: sent again with it, the report counts once (`''` when the
   * report was refused before it had one). */
  readonly id: string;
}
/** Its kind, detail and words, as every add-on's error has them. */
export interface UsageError extends AddOnErrorWords {}

/** A recorded report. */
export interface UsageRecorded {
  /** The report's idempotency id (the one given, or the one made). */
  id: string;
  /** Recorded before under this id: counted once. */
  duplicate: boolean;
  /** The meter's balance as the relay knows it after this report; null when not read yet. */
  balance: number | null;
  /**
   * True when the relay's signed acknowledgement verified with `relayKeys` (signed mode: every
   * recorded report is; an answer without one is a UsageError `protocol_error`). False without
   * `relayKeys`: `recorded` and the balance are only what answered at `relay` (a proxy could
   * say anything) (issue #76).
   */
  signed: boolean;
}

export interface UsageOptions {
  /** The organization (UUID v4). */
  organizationId: string;
  /** The seller's relay's URL (`relay serve --record-usage`). */
  relay: string;
  /** The license key. */
  key: string;
  /** The event name the seller's meter counts (1 to 128 bytes of printable text). */
  meter: string;
  /** The units used: above 0, at most 1,000,000,000 (NaN, infinities, 0 and negatives are
   * `invalid_input`, nothing sent). */
  units: number;
  /** The app's own idempotency id (1 to 64 of `A-Z a-z 0-9 - _ .`); default a new UUID v4. */
  id?: string;
  /** The relay's public keys (`KID=k4.public.…`), as the client's signed mode takes them:
   * signed mode, the answer believed only from the relay's signed acknowledgement (a missing
   * or forged one is `protocol_error`, its balance never read). Default: none (unsigned). */
  relayKeys?: string[] | string;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
  /** Per send, default 30,000. */
  timeoutMs?: number;
}

/** Reports `units` of `meter` used with `key` to the seller's relay: the recorded report, or a
 * rejected UsageError. Sent again with the same id (three sends at most) while the relay cannot
 * be reached, answers 5xx or asks to wait. */
export declare function recordUsage(options: UsageOptions): Promise<UsageRecorded>;
