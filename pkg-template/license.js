// The JS API of polar-license, shared by the node and browser entries (node.js, browser.js).
// A thin layer over the wasm-bindgen output (polar_license.js): options go in as JSON, results
// come back as JSON, failures become LicenseError. No logic of its own beyond that: even the
// feature answers are computed in Rust (a verdict arrives with its answer for every feature of
// the map and for any other name; `hasFeature` only looks them up).

import { Core } from './polar_license.js';

/** Every reason code (contract §1) and its kind: `denied`, `unverified` or `error`. */
export const REASONS = Object.freeze({
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
});

const EXTRAS = ['status', 'field', 'retryAfter', 'remainingUsages', 'timeout'];

/**
 * Why a call did not succeed. `code` is a stable reason code (see REASONS), `kind` tells a
 * denial (the server said no) from an unverified answer (no trustworthy answer, e.g. offline)
 * and an error (bad input, bad answer, broken storage); `detail` is Polar's text or ours.
 */
export class LicenseError extends Error {
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
}

function toLicenseError(e) {
  if (e instanceof LicenseError) return e;
  if (e && e.name === 'LicenseError' && typeof e.code === 'string') {
    return new LicenseError(e.code, String(e.detail ?? ''), e);
  }
  return e;
}

function checkKey(key) {
  if (typeof key !== 'string') {
    throw new LicenseError('invalid_input', 'key: must be a string', { field: 'key' });
  }
  return key;
}

function checkFeature(name) {
  if (typeof name !== 'string') {
    throw new LicenseError('invalid_input', 'feature: must be a string', { field: 'feature' });
  }
  return name;
}

/**
 * Gives a licensed verdict its non-enumerable `hasFeature(name)` (so the verdict stays plain
 * data for JSON.stringify, deepEqual and structured clone) from the answers Rust computed.
 */
function withFeatures(result) {
  const { listed, unlisted } = result.features;
  delete result.features;
  Object.defineProperty(result, 'hasFeature', {
    value: function hasFeature(name) {
      checkFeature(name);
      return Object.hasOwn(listed, name) ? { ...listed[name] } : { ...unlisted, feature: name };
    },
  });
  return result;
}

function json(options) {
  if (options === undefined || options === null) return '';
  if (typeof options !== 'object') {
    throw new LicenseError('invalid_input', 'options: must be an object', { field: 'options' });
  }
  return JSON.stringify(options);
}

/**
 * Binds the API to a way of loading the wasm (fs in node, fetch in browsers) and a
 * `crypto` with getRandomValues. The entries call it; its result is what they export, so
 * bundlers keep it even with `sideEffects: false`.
 */
export function bind(load, crypto) {
  let loading = null;

  /**
   * Loads and compiles the WebAssembly module. Optional: every method does it on first use;
   * call it early to move that cost out of the first check.
   */
  function init() {
    if (!loading) {
      loading = Promise.resolve()
        .then(load)
        .then(() => undefined)
        .catch((e) => {
          loading = null;
          throw e;
        });
    }
    return loading;
  }

  /**
   * A client for one Polar organization. Every method returns a promise that resolves only on
   * success and otherwise rejects with a LicenseError: a fulfilled `check()` always means
   * licensed.
   */
  class LicenseClient {
    #options;
    #host;
    #core = null;

    constructor(options) {
      if (options === null || typeof options !== 'object') {
        throw new LicenseError('invalid_input', 'options: must be an object', { field: 'options' });
      }
      const { storage, clock, features, ...rest } = options;
      try {
        this.#options = JSON.stringify(rest);
      } catch (e) {
        throw new LicenseError('invalid_input', `options: ${e.message}`, { field: 'options' });
      }
      this.#host = { storage, clock, crypto, features };
    }

    async #run(method, ...args) {
      try {
        await init();
        if (!this.#core) this.#core = new Core(this.#options, this.#host);
        const text = await this.#core[method](...args);
        return text === undefined ? undefined : JSON.parse(text);
      } catch (e) {
        throw toLicenseError(e);
      }
    }

    /** Validates online, no cache. Resolves `{ license, activation }` with `hasFeature(name)`. */
    async validate(key, options) {
      return withFeatures(await this.#call('validate', key, options));
    }

    /** Activates this installation and remembers the activation. Resolves `{ activation, license }`. */
    activate(key, options) {
      return this.#call('activate', key, options);
    }

    /** Deactivates (default: the remembered activation) and forgets it. Resolves `{ activationId }`. */
    deactivate(key, options) {
      return this.#call('deactivate', key, options);
    }

    /**
     * The grace-aware verdict. Resolves `{ license, activation, source, graceRemaining, verifiedAt }`
     * with `hasFeature(name)`.
     */
    async check(key) {
      return withFeatures(await this.#call('check', key));
    }

    /**
     * Checks `key` and answers "may this copy use feature `name`?": resolves
     * `{ feature, granted, why, licenseReason, remainingUsage, source }` for every verdict (a denied
     * or unverified license is `granted: false`, `why: 'license_not_valid'`, `licenseReason` its
     * code) and rejects only with an error-kind LicenseError (a bad key, map or answer).
     */
    async hasFeature(key, name) {
      checkKey(key);
      checkFeature(name);
      return this.#run('hasFeature', key, name);
    }

    /** What the cache holds for `key`, with no request. */
    status(key) {
      return this.#call('status', key);
    }

    /** Forgets everything cached for `key` (Polar is not told). */
    forget(key) {
      return this.#call('forget', key);
    }

    async #call(method, key, options) {
      checkKey(key);
      const args = method === 'check' || method === 'status' || method === 'forget' ? [key] : [key, json(options)];
      return this.#run(method, ...args);
    }
  }

  return { LicenseClient, init };
}
