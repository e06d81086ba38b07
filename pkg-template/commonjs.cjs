'use strict';
// The CommonJS face of an ES entry (index.cjs, inline.cjs): the package is ES modules (in
// browsers the wasm loads asynchronously), and `require()` of an ES module needs node >= 20.19,
// so CommonJS code, and TypeScript compiled to CommonJS (`import { LicenseClient } from
// 'polar-license'` in an Electron main process), gets stand-ins that load it on first use:
// `LicenseClient` (every method is async: it awaits the ES client), `LicenseError` (an
// `instanceof` that also recognises the ES entry's errors), `REASONS`, `init`, and `load()`
// (the ES module itself).

/** Every reason code and its kind, and the LicenseError fields (EXTRAS): license.js's, written
 * in at pack time from the core's reason table and license.js (scripts/npm/reasons.mjs): the
 * placeholders below are never shipped. */
const REASONS = Object.freeze(/* REASONS */ {});

const EXTRAS = /* EXTRAS */ [];
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
