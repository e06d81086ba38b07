// polar-license/seat (issue #67 item 5): one of a key's floating (or CI) seats through the
// seller's relay, held while the app runs and given back when its AbortSignal aborts.
//
// The steps, their rules and their times are the core's (polar_license::seat_hold::SeatHold, a
// machine with time, in its own wasm, polar_license_seat_bg.wasm, loaded on the first call):
// what to send, what each answer does to the seat, when the next heartbeat goes, when a failed
// one is retried and when the hold ends. This module holds no schedule of its own (issue #76
// finding 2): it sends what the machine says, sleeps for as long as it says, and tells the app
// when it says the hold has ended. A seat is held only while the relay says so in a lease that
// verifies with the app's `relayKeys`: the lease is checked by the core, its signature by the
// package's Ed25519 (`hostEd25519`, the one signed mode checks leases with: node:crypto's, the
// host's WebCrypto, or the package's wasm verifier, issue #38). The default entry carries none
// of it.
import init, * as core from './polar_license_seat.js';
import { LicenseError, hostEd25519 } from 'polar-license';
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
    // The most of an answer read: a seat's is under 2 KB.
    const send = (req) => sendWith(this.#fetch, this.#timeout, req, 64 * 1024, '64 KB');
    // A request the core built, sent, its answer read by `read`: the core's JSON. A lease the
    // core meets is verified by the package's Ed25519 first, and the same answer read again.
    const step = async (ask, read) => {
      const asked = JSON.parse(ask);
      if (asked.none || asked.error) return asked;
      const got = await send(asked.send);
      for (let round = 0; ; round += 1) {
        const a = JSON.parse(read(...got));
        if (!a.verify) return a;
        if (round === 2) return { error: { code: 'protocol_error', detail: 'polar-license/seat: the seat module kept asking for signatures' } };
        hold.verified(await verifyAll(a.verify));
      }
    };
    let got;
    try {
      got = await step(hold.acquire(), (...r) => hold.acquired(...r));
    } catch (e) {
      hold.free();
      throw e;
    }
    if (got.error) {
      // A seat whose lease did not verify is not held here; a real relay still counts it:
      // given back (a forger's answer to it changes nothing).
      if (got.release) await send(got.release).catch(() => {});
      hold.free();
      throw new SeatError(got.error);
    }
    let info = got.held;
    let timer = null;
    let released = null;
    let ended = null;
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
    // The hold ended (the machine says `lost` or `gone`): the app is told once.
    const end = (state, error) => {
      stop();
      ended = state;
      try {
        onLost?.(new SeatError(error ?? { code: state === 'lost' ? 'seat_lost' : 'seat_gone', detail: state }, true));
      } catch {
        // The app's callback threw: nothing of the seat's depends on it.
      }
    };
    // The core's machine, run: what it says now is done, then it is asked again when it says.
    const run = () => {
      timer = null;
      if (released !== null || ended !== null) return;
      const next = JSON.parse(hold.poll());
      if (next.ended) {
        if (next.ended === 'lost' || next.ended === 'gone') end(next.ended, next.error);
        return;
      }
      if (next.send) {
        const beat = (async () => {
          let a;
          try {
            const got = await send(next.send);
            // Released meanwhile: the core holds it no more.
            if (released !== null) return;
            for (let round = 0; ; round += 1) {
              a = JSON.parse(hold.heartbeatAnswer(...got));
              if (!a.verify || round === 2) break;
              hold.verified(await verifyAll(a.verify));
              if (released !== null) return;
            }
          } finally {
            inflight = null;
          }
          if (a?.held) info = a.held;
          if (timer !== null) clearTimeout(timer);
          timer = null;
          // Gone with the relay's own word (Polar's denial): told as it is.
          if ((a?.state === 'gone' || a?.state === 'lost') && a.error && released === null && ended === null) {
            end(a.state, a.error);
            return;
          }
          // The machine says what comes of it (a `gone` or `lost` answer ends the hold).
          run();
        })();
        inflight = beat;
        beat.catch(() => {});
        // While it is out the machine still ends the hold at the lease's end.
        const wait = hold.nextWait();
        if (wait >= 0) timer = setTimeout(run, wait);
        return;
      }
      timer = setTimeout(run, next.wait);
    };
    run();
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

/** The package's Ed25519 on each `[id, key, message, signature]` (hex): `[id, 1 or 0, …]`. */
async function verifyAll(asks) {
  const verify = await hostEd25519();
  const answers = await Promise.all(
    asks.map(async ([id, key, message, signature]) => {
      let valid = false;
      try {
        valid = (await verify(unhex(key), unhex(message), unhex(signature))) === true;
      } catch {
        // A signature the host cannot check is no signature.
      }
      return [id, valid ? 1 : 0];
    }),
  );
  return answers.flat();
}

function unhex(text) {
  const bytes = new Uint8Array(text.length >> 1);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.substr(2 * i, 2), 16);
  return bytes;
}

/** Seats of one organization's keys through the seller's relay (`new Seats(options)`). */
export function seats(options) {
  return new Seats(options);
}
