// polar-license/seat (issue #67 item 5): one of a key's floating (or CI) seats through the
// seller's relay, held while the app runs and given back when its AbortSignal aborts.
//
// The steps, their rules and their times are the core's (polar_license::seat_hold::SeatHold, a
// machine with time, in its own wasm, polar_license_seat_bg.wasm, loaded on the first call):
// what to send, what each answer does to the seat, when the next heartbeat goes, when a failed
// one is retried and when the hold ends. This module holds no schedule of its own (issue #76
// finding 2): the package's one drive loop (drive.js) sends what the machine says and sleeps for
// as long as it says; this module tells the app what the machine notes (the seat held, the hold
// ended) and stops the loop at the release, which the machine answers with the release. A seat is held only while the relay says so in a lease that
// verifies with the app's `relayKeys`: the lease is checked by the core, its signature by the
// package's Ed25519 (`hostEd25519`, the one signed mode checks leases with: node:crypto's, the
// host's WebCrypto, or the package's wasm verifier, issue #38). The default entry carries none
// of it.
import init, * as core from './polar_license_seat.js';
import { LicenseError, hostEd25519 } from 'polar-license';
import { drive, wasmLoader } from './drive.js';

/** Why a seat was not held or was lost: a LicenseError (`seats_full`, `seat_gone`, Polar's
 * denial of the key, `invalid_input`, `offline`, …) with, for `seats_full`, the seats in use,
 * the pool's size and when the soonest frees; `gone`: the seat is held no more. */
export class SeatError extends LicenseError {
  constructor(error, gone = false) {
    super(error.code, error.detail, error);
    this.name = 'SeatError';
    // `seat_gone` is no reason code: the core names its kind.
    if (error.kind !== undefined) this.kind = error.kind;
    this.inUse = error.inUse ?? null;
    this.size = error.size ?? null;
    this.freesAt = error.freesAt ?? null;
    this.gone = gone;
    // `seat_lost`: when the hold ended (unix seconds).
    if (error.endedAt !== undefined) this.endedAt = error.endedAt;
  }
}

const fail = (code, field, detail) => new SeatError({ code, field, detail });

/** The module's wasm, loaded on the first call and once. */
const load = wasmLoader(new URL('./polar_license_seat_bg.wasm', import.meta.url), init, core, (why) =>
  fail('load_error', undefined, `polar-license/seat: its wasm did not load: ${why}; copy polar_license_seat_bg.wasm beside your bundle`),
);

const TIMEOUT_MS = 30000;

/** A random binding for this holder (one process, one tab): a seat is this run's, not the
 * machine's. Node 18 has no global crypto: node:crypto's there. */
async function randomMachine() {
  if (typeof globalThis.crypto?.randomUUID === 'function') return globalThis.crypto.randomUUID();
  try {
    const name = 'node:crypto';
    return (await import(name)).randomUUID();
  } catch {
    throw fail('invalid_input', 'machine', 'machine: this host has no crypto.randomUUID: pass `machine`');
  }
}

/** Seats of one organization's keys through the seller's relay. */
export class Seats {
  #org;
  #relay;
  #fetch;
  #timeout;
  #client;

  #keys;
  #grace;

  /**
   * `options`: `organizationId`, `relay` (the seller's relay's URL), `relayKeys` (the relay's
   * public keys, `KID=k4.public.…`, as the client's signed mode takes them: an array or one
   * comma-separated string; required to hold a seat: every seat lease is verified with them),
   * `graceMs` (how long past a lease's end with no renewal the seat is still held; default 0:
   * lost at the lease's end), `client` (a LicenseClient: `seat()` without a key takes its
   * remembered key), `fetch` (default: the global one), `timeoutMs` (each request's, default
   * 30 s).
   */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') throw fail('invalid_input', 'options', 'options must be an object');
    const { organizationId, relay, relayKeys, graceMs, client, fetch: fetchFn, timeoutMs } = options;
    for (const [name, value] of [['organizationId', organizationId], ['relay', relay]]) {
      if (typeof value !== 'string') throw fail('invalid_input', name === 'relay' ? 'relay' : 'organization_id', `${name} must be a string`);
    }
    // No keys: no seat (a forged answer would be one). Checked by the core at `seat()`, before
    // anything is sent, as `invalid_input` naming `relay_keys`; the shape is checked here.
    const list = relayKeys === undefined ? [] : typeof relayKeys === 'string' ? [relayKeys] : relayKeys;
    if (!Array.isArray(list) || list.some((k) => typeof k !== 'string')) {
      throw fail('invalid_input', 'relay_keys', "relayKeys must be an array of 'KID=k4.public.…' strings or one comma-separated string");
    }
    if (graceMs !== undefined && !(Number.isFinite(graceMs) && graceMs >= 0)) throw fail('invalid_input', 'graceMs', 'graceMs must be a number of milliseconds, 0 or more');
    this.#keys = list.join(',');
    this.#grace = graceMs ?? 0;
    if (client !== undefined && typeof client?.rememberedKey !== 'function') throw fail('invalid_input', 'client', 'client must be a LicenseClient');
    if (fetchFn !== undefined && typeof fetchFn !== 'function') throw fail('invalid_input', 'fetch', 'fetch must be a function called like the global fetch');
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw fail('invalid_input', 'timeoutMs', 'timeoutMs must be a positive number');
    [this.#org, this.#relay] = [organizationId, relay];
    this.#fetch = fetchFn ?? ((...a) => globalThis.fetch(...a));
    this.#timeout = timeoutMs ?? TIMEOUT_MS;
    this.#client = client ?? null;
  }

  /**
   * Holds one of `key`'s seats: acquired now (its lease verified with `relayKeys`), kept by
   * heartbeats when the core's machine says (a third of its life; a failed one retried after
   * 1 s, 2 s, 4 s, … while the lease runs), released when `signal` aborts (or `release()` is
   * called). The seat is held only while its lease (or the seller's grace after it) runs:
   * `onLost(error)` is called once when the hold ends without a release, `seat_lost` (the lease
   * ended with no renewal the relay signed: the relay out of reach; stop what the seat
   * licenses, another machine may hold it now) or `seat_gone` (the relay freed it, or Polar
   * denied the key); `error.gone` is true. Resolves to the seat's handle `{ id, expiresAt,
   * info, state, release() }`; rejects with a SeatError (`seats_full`, `invalid_input` naming
   * `relay_keys` without relay keys, `protocol_error` for an answer whose lease does not verify,
   * …) when no seat is held. `key`: default, the client's remembered key; `machine`: the
   * binding signed into the seat (default: a random one per call); `ci`: a CI seat.
   */
  async seat(options = {}) {
    if (options === null || typeof options !== 'object') throw fail('invalid_input', 'options', 'options must be an object');
    const { machine, ci, signal, onLost } = options;
    let { key } = options;
    if (key === undefined && this.#client !== null) {
      key = await this.#client.rememberedKey();
      if (key === null) throw fail('invalid_input', 'key', 'key: none given, and the client remembers none');
    }
    if (typeof key !== 'string') throw fail('invalid_input', 'key', 'key must be a string');
    if (machine !== undefined && typeof machine !== 'string') throw fail('invalid_input', 'machine', 'machine must be a string');
    if (onLost !== undefined && typeof onLost !== 'function') throw fail('invalid_input', 'onLost', 'onLost must be a function');
    if (signal !== undefined && typeof signal?.addEventListener !== 'function') throw fail('invalid_input', 'signal', 'signal must be an AbortSignal');
    if (signal?.aborted) throw signal.reason ?? new Error('aborted');
    const c = await load();
    const hold = new c.Hold(this.#org, this.#relay, key, machine ?? (await randomMachine()), ci === true, this.#keys, this.#grace);
    let info = null;
    let ended = null;
    let held;
    const acquired = new Promise((resolve) => (held = resolve));
    // The app's release stops the loop: the machine answers with the release.
    const stopping = new AbortController();
    const run = drive(hold.start(), (given, body) => hold.give(JSON.stringify(given), body), {
      fetch: this.#fetch,
      timeout: this.#timeout,
      // The most of an answer read: a seat's is under 2 KB.
      maxBody: 64 * 1024,
      verifier: hostEd25519,
      signal: stopping.signal,
      fail: (code, detail) => fail(code, undefined, detail),
      note: (note) => {
        if (note.held) {
          info = note.held;
          held();
        } else if (note.ended) {
          // The hold ended (the machine says `lost` or `gone`): the app is told once.
          ended = note.ended;
          try {
            onLost?.(new SeatError(note.error ?? { code: ended === 'lost' ? 'seat_lost' : 'seat_gone', detail: ended }, true));
          } catch {
            // The app's callback threw: nothing of the seat's depends on it.
          }
        }
      },
    });
    // The hold is freed once its run is over (released, or never held).
    const over = run.finally(() => hold.free());
    over.catch(() => {});
    const first = await Promise.race([acquired, run]);
    if (first?.done) throw new SeatError(first.done.error);
    let released = null;
    function release() {
      if (released === null) {
        signal?.removeEventListener('abort', release);
        stopping.abort();
        released = over.then(
          ({ done }) => (done.error ? { released: false, error: new SeatError(done.error) } : { released: done.released }),
          (e) => ({ released: false, error: e }),
        );
      }
      return released;
    }
    signal?.addEventListener('abort', release, { once: true });
    // Aborted while acquiring: the seat just taken goes back at once.
    if (signal?.aborted) {
      await release();
      throw signal.reason ?? new Error('aborted');
    }
    return {
      get info() {
        return info;
      },
      get id() {
        return info.id;
      },
      get expiresAt() {
        return info.expiresAt;
      },
      /** `held`, `lost` (its lease ended unrenewed: from that moment on, even before onLost is
       * called), `gone` (the relay freed it) or `released`: the core's machine's word. */
      get state() {
        if (released !== null) return 'released';
        return ended ?? hold.state();
      },
      release,
    };
  }
}

/** Seats of one organization's keys through the seller's relay (`new Seats(options)`). */
export function seats(options) {
  return new Seats(options);
}
