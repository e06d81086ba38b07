'use strict';
// The CommonJS face of an ES entry (index.cjs, inline.cjs): the package is ES modules (in
// browsers the wasm loads asynchronously), and `require()` of an ES module needs node >= 20.19,
// so CommonJS code, and TypeScript compiled to CommonJS (`import { LicenseClient } from
// 'polar-license'` in an Electron main process), gets stand-ins that load it on first use:
// `LicenseClient` (every method is async: it awaits the ES client), `LicenseError` (an
// `instanceof` that also recognises the ES entry's errors), `REASONS`, `init`, and `load()`
// (the ES module itself).

/** Every reason code and its kind, and EXTRAS: the same as license.js's (a test compares). */
const REASONS = Object.freeze({
  not_found: 'denied',
  inactive: 'denied',
  expired: 'denied',
  conditions_mismatch: 'denied',
  benefit_mismatch: 'denied',
  customer_mismatch: 'denied',
  usage_exhausted: 'denied',
  activation_limit: 'denied',
  activations_not_supported: 'denied',
  offline: 'unverified',
  rate_limited: 'unverified',
  server_error: 'unverified',
  grace_expired: 'unverified',
  clock_rollback: 'unverified',
  protocol_error: 'error',
  invalid_input: 'error',
  cache_error: 'error',
  load_error: 'error',
  not_yet_verified: 'unverified',
  replayed: 'unverified',
  seats_full: 'denied',
  credits_exhausted: 'denied',
});

const EXTRAS = ['status', 'field', 'retryAfter', 'remainingUsages', 'timeout', 'cacheRefreshed', 'previouslyValid', 'hint', 'userMessage'];
const METHODS = ['validate', 'activate', 'deactivate', 'check', 'checkInBackground', 'hasFeature', 'status', 'forget', 'rememberKey', 'rememberedKey', 'forgetKey'];

/** The exports of a CommonJS entry whose ES module `importer()` imports. */
module.exports = function commonjs(importer) {
  let loading = null;
  const load = () => (loading ??= importer());

  class LicenseError extends Error {
    constructor(code, detail, extras = {}) {
      super(`${code}: ${detail}`);
      this.name = 'LicenseError';
      this.code = code;
      this.kind = REASONS[code] ?? 'error';
      this.detail = detail;
      for (const name of EXTRAS) {
        if (extras[name] !== undefined) this[name] = extras[name];
      }
    }
    /** The ES entry's LicenseErrors are LicenseErrors here too. */
    static [Symbol.hasInstance](value) {
      return Function.prototype[Symbol.hasInstance].call(this, value) ||
        (value instanceof Error && value.name === 'LicenseError' && Object.hasOwn(REASONS, value.code));
    }
    /** Plain data (JSON and structured-clone safe): every field and `message`. */
    toJSON() {
      return { ...this, message: this.message };
    }
  }

  const clients = new WeakMap();
  class LicenseClient {
    constructor(options) {
      // The ES constructor never throws (a bad option rejects every call instead).
      clients.set(this, load().then((m) => new m.LicenseClient(options)));
      clients.get(this).catch(() => {});
    }
  }
  for (const name of METHODS) {
    Object.defineProperty(LicenseClient.prototype, name, {
      value: async function (...args) {
        return (await clients.get(this))[name](...args);
      },
      writable: true,
      configurable: true,
    });
  }

  return { load, LicenseClient, LicenseError, REASONS, init: async () => (await load()).init() };
};
