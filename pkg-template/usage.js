// polar-license/usage (issue #68 item 3): `units` of a meter used with a key, reported to the
// seller's relay (`relay serve --record-usage`, `POST /v1/usage/record`) with an idempotency
// id, so a report sent again counts once.
//
// The report and its rules are the core's (polar_license::usage::RecordUsage, in its own wasm,
// polar_license_usage_bg.wasm, loaded on the first call): the id, the request and its input
// checks, the sends again of the same id (the relay out of reach, its 5xx or backlog: three
// sends at most) and the waits between them, and which answers end it. This module only sends
// what the wasm asks over `fetch`, waits as it says, and hands back what came. The default
// entry carries none of it.
import init, * as core from './polar_license_usage.js';
import { LicenseError } from 'polar-license';
import { wasmLoader, send } from './wasm-io.js';

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

/** 16 random bytes for a new id. Node 18 has no global crypto: node:crypto's there. */
async function randomBytes() {
  const name = 'node:crypto';
  return (globalThis.crypto ?? (await import(name)).webcrypto).getRandomValues(new Uint8Array(16));
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
 * always false, this module verifies nothing, issue #76), else a
 * UsageError. `id`: the app's own idempotency id (1 to 64 of `A-Z a-z 0-9 - _ .`), or a new
 * UUID v4. `fetch` (default: the global one), `timeoutMs` (per send, default 30 s).
 */
export async function recordUsage(options) {
  if (options === null || typeof options !== 'object') throw fail('invalid_input', 'options', 'options must be an object');
  const { organizationId, relay, key, meter, units, id, fetch: fetchFn, timeoutMs } = options;
  for (const [name, value] of [['organization_id', organizationId], ['relay', relay], ['key', key], ['meter', meter]]) {
    if (typeof value !== 'string') throw fail('invalid_input', name, `${name} must be a string`);
  }
  if (typeof units !== 'number') throw fail('invalid_input', 'units', 'units must be a number');
  if (id !== undefined && typeof id !== 'string') throw fail('invalid_input', 'id', 'id must be a string');
  if (fetchFn !== undefined && typeof fetchFn !== 'function') throw fail('invalid_input', 'fetch', 'fetch must be a function called like the global fetch');
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw fail('invalid_input', 'timeout_ms', 'timeoutMs must be a positive number');
  const fetchWith = fetchFn ?? ((...a) => globalThis.fetch(...a));
  const c = await load();
  const report = new c.Report(organizationId, relay, key, meter, units, id, await randomBytes());
  try {
    let step = JSON.parse(report.start());
    // The core bounds the sends (three at most): this loop ends with it.
    while (step.send) {
      if (step.afterMs > 0) await new Promise((resolve) => setTimeout(resolve, step.afterMs));
      const [status, headers, body] = await send(fetchWith, timeoutMs ?? TIMEOUT_MS, step.send, MAX_BODY, '64 KB');
      step = JSON.parse(report.answer(status, headers, body));
    }
    if (step.error) throw new UsageError(step.error);
    return step.recorded;
  } finally {
    report.free();
  }
}
