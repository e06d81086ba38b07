// polar-license/seat (issue #67 item 5): one of a key's floating (or CI) seats through the
// seller's relay, held while the app runs and given back when its AbortSignal aborts.
//
// The steps and their rules are the core's (polar_license::seat_hold::SeatHold, in its own
// wasm, polar_license_seat_bg.wasm, loaded on the first call): what to send, what each answer
// does to the seat, when it is lost and how often to heartbeat. This module only sends the
// requests the wasm builds over `fetch`, schedules the heartbeat at the interval the wasm gives
// and wires the signal, as the Tauri guest's `seat()` does. The default entry carries none of it.
import init, * as core from './polar_license_seat.js';
import { LicenseError } from 'polar-license';
import { wasmLoader, send as sendWith } from './wasm-io.js';

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

  /**
   * `options`: `organizationId`, `relay` (the seller's relay's URL), `client` (a LicenseClient:
   * `seat()` without a key takes its remembered key), `fetch` (default: the global one),
   * `timeoutMs` (each request's, default 30 s).
   */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') throw fail('invalid_input', 'options', 'options must be an object');
    const { organizationId, relay, client, fetch: fetchFn, timeoutMs } = options;
    for (const [name, value] of [['organizationId', organizationId], ['relay', relay]]) {
      if (typeof value !== 'string') throw fail('invalid_input', name === 'relay' ? 'relay' : 'organization_id', `${name} must be a string`);
    }
    if (client !== undefined && typeof client?.rememberedKey !== 'function') throw fail('invalid_input', 'client', 'client must be a LicenseClient');
    if (fetchFn !== undefined && typeof fetchFn !== 'function') throw fail('invalid_input', 'fetch', 'fetch must be a function called like the global fetch');
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw fail('invalid_input', 'timeoutMs', 'timeoutMs must be a positive number');
    [this.#org, this.#relay] = [organizationId, relay];
    this.#fetch = fetchFn ?? ((...a) => globalThis.fetch(...a));
    this.#timeout = timeoutMs ?? TIMEOUT_MS;
    this.#client = client ?? null;
  }

  /**
   * Holds one of `key`'s seats: acquired now, heartbeated at the interval the core gives (a
   * third of its life), released when `signal` aborts (or `release()` is called). `onLost(error)`
   * is called once when a heartbeat finds the seat gone (the relay freed it, or Polar denied the
   * key); a heartbeat that cannot reach the relay keeps the seat and beats again at the next
   * interval. Resolves to the seat's handle `{ id, expiresAt, info, release() }`; rejects with a
   * SeatError (`seats_full`, …) when no seat is held. `key`: default, the client's remembered
   * key; `machine`: the binding signed into the seat (default: a random one per call); `ci`: a
   * CI seat.
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
    const hold = new c.Hold(this.#org, this.#relay, key, machine ?? (await randomMachine()), ci === true);
    // The most of an answer read: a seat's is under 2 KB.
    const send = (req) => sendWith(this.#fetch, this.#timeout, req, 64 * 1024, '64 KB');
    // A request the core built, sent, its answer read by `read`: the core's JSON.
    const step = async (ask, read) => {
      const asked = JSON.parse(ask);
      if (asked.none) return asked;
      if (asked.error) return asked;
      return JSON.parse(read(...(await send(asked.send))));
    };
    const got = await step(hold.acquire(), (...r) => hold.acquired(...r));
    if (got.error) {
      hold.free();
      throw new SeatError(got.error);
    }
    let info = got.held;
    let timer = null;
    let released = null;
    let lost = false;
    const stop = () => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      signal?.removeEventListener('abort', release);
    };
    // The heartbeat in flight, if any: the hold is freed only once it and the release are done.
    let inflight = null;
    async function release() {
      if (released === null) {
        stop();
        released = step(hold.release(), (...r) => hold.releaseAnswer(...r)).then((a) => {
          if (a.none) return { released: false };
          if (a.error) return { released: false, error: new SeatError(a.error) };
          return { released: a.released };
        }, (e) => ({ released: false, error: e }));
        Promise.allSettled([released, inflight]).then(() => hold.free());
      }
      return released;
    }
    const beat = async () => {
      timer = null;
      if (released !== null) return;
      let a;
      try {
        inflight = step(hold.heartbeat(), (...r) => hold.heartbeatAnswer(...r));
        a = await inflight;
      } catch {
        // Nothing the core read (a host failure): the seat is kept, beat again.
        a = { state: 'held' };
      } finally {
        inflight = null;
      }
      // Released meanwhile: the core holds it no more, and nothing is scheduled.
      if (released !== null || a.none) return;
      if (a.held) info = a.held;
      if (a.state === 'gone') {
        stop();
        lost = true;
        try {
          onLost?.(new SeatError(a.error, true));
        } catch {
          // The app's callback threw: nothing of the seat's depends on it.
        }
        return;
      }
      timer = setTimeout(beat, info.heartbeatMs);
    };
    timer = setTimeout(beat, info.heartbeatMs);
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
      /** `held`, `gone` (onLost was called) or `released`. */
      get state() {
        return released !== null ? 'released' : lost ? 'gone' : 'held';
      },
      release,
    };
  }
}

/** Seats of one organization's keys through the seller's relay (`new Seats(options)`). */
export function seats(options) {
  return new Seats(options);
}
