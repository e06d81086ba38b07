// polar-license/usage (issue #68 item 3): `units` of a meter used with a key, reported to the
// seller's relay (`relay serve --record-usage`, `POST /v1/usage/record`) with an idempotency
// id, so a report sent again counts once.
//
// The report and its rules are the core's (polar_license::usage::RecordUsage, in its own wasm,
// polar_license_usage_bg.wasm, loaded on the first call): the id, the request and its input
// checks, the sends again of the same id (the relay out of reach, its 5xx or backlog: three
// sends at most) and the waits between them, and which answers end it. The package's one drive
// loop (drive.js) sends what the wasm asks over `fetch`, waits as it says, and hands back what
// came; this module checks the app's input and hands over the end. The default entry carries
// none of it.
//
// Signed mode (issue #76, `relayKeys`): each send carries a fresh nonce, and the answer is
// believed only from the relay's signed acknowledgement naming it (the core's rule): an answer
// without one, or whose signature does not verify, is `protocol_error`, its balance never
// read. The signature is checked by the package's Ed25519 (`hostEd25519`, as signed mode's
// leases): the wasm asks (`{"verify": …}`), the loop answers.
import init, * as core from './polar_license_usage.js';
import { LicenseError, hostEd25519 } from 'polar-license';
import { drive, wasmLoader } from './drive.js';

/** Why a report was not recorded: a LicenseError (`credits_exhausted` with the balance,
 * `usage_backlog`, Polar's denial of the key, `invalid_input`, `offline`, …) with the report's
 * `id` (send it again with this id: it counts once). */
export class UsageError extends LicenseError {
  constructor(error) {
    super(error.code, error.detail, error);
    this.name = 'UsageError';
    this.id = error.id ?? '';
    this.balance = error.balance ?? null;
  }
}

const fail = (code, field, detail) => new UsageError({ code, field, detail });

/** 32 random bytes: a new id's 16, then signed mode's nonce's 16. Node 18 has no global
 * crypto: node:crypto's there. */
async function randomBytes() {
  const name = 'node:crypto';
  return (globalThis.crypto ?? (await import(name)).webcrypto).getRandomValues(new Uint8Array(32));
}

/** The module's wasm, loaded once (read from disk under node, fetched beside this file else). */
const load = wasmLoader(new URL('./polar_license_usage_bg.wasm', import.meta.url), init, core, (why) =>
  fail('load_error', undefined, `polar-license/usage: its wasm did not load: ${why}; copy polar_license_usage_bg.wasm beside your bundle`));

const TIMEOUT_MS = 30000;
/** The most of an answer read: a report's is under 1 KB. */
const MAX_BODY = 64 * 1024;

/**
 * Reports `units` of `meter` used with `key` to the seller's relay at `relay`:
 * `{ id, duplicate, balance, signed }` when recorded (`duplicate`: recorded before under this
 * id, counted once; `balance`: the meter's balance as the relay knows it, or null; `signed`:
 * true when the relay's signed acknowledgement verified, false without `relayKeys`), else a
 * UsageError. `id`: the app's own idempotency id (1 to 64 of `A-Z a-z 0-9 - _ .`), or a new
 * UUID v4. `relayKeys` (the relay's public keys, `KID=k4.public.…`, an array or one
 * comma-separated string, as the client's signed mode takes them): signed mode, an answer
 * believed only from the relay's acknowledgement that verifies (else `protocol_error`).
 * `fetch` (default: the global one), `timeoutMs` (per send, default 30 s).
 */
export async function recordUsage(options) {
  if (options === null || typeof options !== 'object') throw fail('invalid_input', 'options', 'options must be an object');
  const { organizationId, relay, key, meter, units, id, relayKeys, fetch: fetchFn, timeoutMs } = options;
  for (const [name, value] of [['organization_id', organizationId], ['relay', relay], ['key', key], ['meter', meter]]) {
    if (typeof value !== 'string') throw fail('invalid_input', name, `${name} must be a string`);
  }
  if (typeof units !== 'number') throw fail('invalid_input', 'units', 'units must be a number');
  if (id !== undefined && typeof id !== 'string') throw fail('invalid_input', 'id', 'id must be a string');
  const keys = relayKeys === undefined ? [] : typeof relayKeys === 'string' ? [relayKeys] : relayKeys;
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string')) {
    throw fail('invalid_input', 'relay_keys', "relayKeys must be an array of 'KID=k4.public.…' strings or one comma-separated string");
  }
  if (fetchFn !== undefined && typeof fetchFn !== 'function') throw fail('invalid_input', 'fetch', 'fetch must be a function called like the global fetch');
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw fail('invalid_input', 'timeout_ms', 'timeoutMs must be a positive number');
  const fetchWith = fetchFn ?? ((...a) => globalThis.fetch(...a));
  const c = await load();
  const report = new c.Report(organizationId, relay, key, meter, units, id, await randomBytes(), keys.join(','));
  try {
    // The core bounds the sends (three at most) and says each wait: the loop ends with it.
    const { done } = await drive(report.start(), (given, body) => report.give(JSON.stringify(given), body), {
      fetch: fetchWith,
      timeout: timeoutMs ?? TIMEOUT_MS,
      maxBody: MAX_BODY,
      verifier: hostEd25519,
      fail: (code, detail) => fail(code, undefined, detail),
    });
    if (done.error) throw new UsageError(done.error);
    return done.recorded;
  } finally {
    report.free();
  }
}
