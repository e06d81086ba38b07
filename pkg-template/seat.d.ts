// polar-license/seat (issue #67 item 5): one of a key's floating (or CI) seats through the
// seller's relay, held only while the relay's signed lease runs (issue #76), heartbeated when
// the core's machine says and given back when an AbortSignal aborts. Its wasm loads on the
// first call; the default entry carries none of it.
import type { AddOnErrorWords, ReasonCode } from 'polar-license';

/** Why a seat was not held, or was lost. At runtime a subclass of polar-license's LicenseError
 * (`instanceof LicenseError` holds); declared apart because its `code` may be `seat_gone`, no
 * reason code (as the Tauri guest's SeatError). */
export declare class SeatError extends Error {
  readonly name: 'SeatError';
  /** A reason code (`seats_full`, `seat_lost`: the lease ended with no renewal the relay
   * signed, Polar's denial of the key, `invalid_input`, `protocol_error`: an answer whose seat
   * lease did not verify, `offline`, …) or `seat_gone` (the relay freed the seat: not heard
   * from within its life). */
  readonly code: ReasonCode | 'seat_gone';
  /** The input at fault, for `invalid_input`. */
  readonly field?: string;
  /** `seats_full`, `rate_limited`: seconds to wait, when the relay said. */
  readonly retryAfter?: number;
  /** `seats_full`: the seats in use. */
  readonly inUse: number | null;
  /** `seats_full`: the key's seats (for a CI seat, the CI cap). */
  readonly size: number | null;
  /** `seats_full`: when the soonest seat frees (unix seconds), when the relay said. */
  readonly freesAt: number | null;
  /** The seat is held no more (an `onLost` error): take a seat again. */
  readonly gone: boolean;
  /** `seat_lost`: when the hold ended (unix seconds: the lease's end and the grace after it). */
  readonly endedAt?: number;
}
/** Its kind, detail and words, as every add-on's error has them. */
export interface SeatError extends AddOnErrorWords {}

/** A seat as the relay last answered it. */
export interface SeatInfo {
  /** The seat's id. */
  id: string;
  /** A CI seat. */
  ci: boolean;
  /** When it frees unless heard from (unix seconds): the relay's signed lease's end. */
  expiresAt: number;
  /** When the hold ends here unless renewed (unix milliseconds, this host's clock: the lease's
   * end, or sooner when this clock is behind the relay's, plus `graceMs`). */
  endsAtMs: number;
  /** Its life, in seconds. */
  expiresIn: number;
  /** How often it is heartbeated, in milliseconds (the core's: a third of its life). */
  heartbeatMs: number;
  /** Seats of the key in use, this one with them. */
  inUse: number;
  /** The key's seats. */
  size: number;
}

/** `release()`'s answer: whether the relay still held the seat (`error`: no answer; the relay
 * frees it at the end of its life). */
export interface SeatReleased {
  released: boolean;
  error?: unknown;
}

/** A seat `seat()` holds: heartbeated until released, aborted or lost. */
export interface HeldSeat {
  readonly id: string;
  /** When it frees unless heard from (unix seconds), as the last heartbeat left it. */
  readonly expiresAt: number;
  /** The seat as the last heartbeat left it. */
  readonly info: SeatInfo;
  /** `held`, `lost` (the lease ended with no renewal: from that moment, even before `onLost`
   * runs), `gone` (the relay freed it; `onLost` was called) or `released`. */
  readonly state: 'held' | 'lost' | 'gone' | 'released';
  /** Stops the heartbeat and gives the seat back (once; later calls get the same answer). */
  release(): Promise<SeatReleased>;
}

/** Options of `new Seats(…)`. */
export interface SeatsOptions {
  /** The Polar organization's id (a UUID). */
  organizationId: string;
  /** The seller's relay's URL (`polar-license relay serve`, or the Workers relay). */
  relay: string;
  /** The relay's public keys (`KID=k4.public.…`, an array or one comma-separated string), as
   * the client's signed mode takes them. Required to hold a seat: every seat lease is verified
   * with them (none: `seat()` rejects with `invalid_input`, field `relay_keys`, sending
   * nothing; required here so that TypeScript says so first). */
  relayKeys: string | readonly string[];
  /** How long past a lease's end with no renewal the seat is still held, in milliseconds
   * (default 0: lost at the lease's end; the relay may give it away from then on). */
  graceMs?: number;
  /** A LicenseClient: `seat()` without a key takes its remembered key. */
  client?: { rememberedKey(): Promise<string | null> };
  /** Default: the global fetch. */
  fetch?: typeof globalThis.fetch;
  /** Each request's timeout in milliseconds (default 30,000). */
  timeoutMs?: number;
}

/** Options of `seat()`. */
export interface SeatOptions {
  /** The license key (default: the `client`'s remembered key; none: `invalid_input`). */
  key?: string;
  /** The binding signed into the seat (default: a random one per seat). */
  machine?: string;
  /** A CI seat (the seller may cap them apart). */
  ci?: boolean;
  /** Aborting it releases the seat. */
  signal?: AbortSignal;
  /** Called once when the hold ends without a release: `seat_lost` (its lease ended with no
   * renewal: stop what it licenses) or `seat_gone` (the relay freed it, or Polar denied the
   * key). */
  onLost?: (error: SeatError) => void;
}

/** Seats of one organization's keys through the seller's relay. */
export declare class Seats {
  constructor(options: SeatsOptions);
  /** Holds one of the key's seats (rejects with a SeatError: `seats_full`, …). */
  seat(options?: SeatOptions): Promise<HeldSeat>;
}

/** `new Seats(options)`. */
export declare function seats(options: SeatsOptions): Seats;
