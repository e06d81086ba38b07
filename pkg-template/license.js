// The JS API of polar-license, shared by the node and browser entries (node.js, browser.js).
//
// Sans-IO: every decision is made in Rust by the wasm `Engine` (input checks, the request, the
// classification of Polar's answer, the grace plan and settlement, the cache record, its seal
// and its ledger and the compare before writing them, the feature answers), the same core the
// native library runs. This layer does the IO between
// its synchronous steps: fetch (with a timeout), the storage, the clock,
// random bytes for the install secret, one lock per storage slot (the origin's Web Lock where
// there is one, shared by its tabs; held around reads and writes, never while a check asks Polar),
// the set of keys being asked, and the awaits. Every step is `engine.call(name, [arguments])`;
// the engine keeps nothing between calls and answers JSON text: `{ ok }` or `{ error }` (a
// LicenseError's fields), `{ ask }` (a request to send), or a step `{ answer, write, ask, strict }`
// (`write`: `[name, text]` pairs to store in that order).

import { Engine } from './polar_license.js';
import { drive, describe, unhex } from './drive.js';

// The package's one loop, for the package's own tests of it (license.js ships with it inside).
export { drive };

/**
 * Every reason code (docs/interfaces.md §1) and its kind: `denied`, `unverified` or `error`.
 * Written in at pack time from the core's reason table (scripts/npm/reasons.mjs; commonjs.cjs
 * gets the same): the placeholder below is never shipped.
 */
export const REASONS = Object.freeze(/* REASONS */ {});

/** The core's words for a `cache_error` (`Reason::message`), for the one this file raises before
 * any engine exists: written in at pack time from the engine's reason table like REASONS. */
const CACHE_ERROR_SAID = /* CACHE_ERROR_SAID */ '';

const EXTRAS = ['status', 'field', 'retryAfter', 'remainingUsages', 'timeout', 'cacheRefreshed', 'previouslyValid', 'activationGone', 'hint', 'userMessage', 'nextStep', 'fallback', 'paidThrough', 'trial', 'stopped', 'portal'];

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

  /**
   * Plain data (JSON and structured-clone safe, e.g. across Electron's IPC, which keeps only an
   * Error's message): `name`, `code`, `kind`, `message`, `detail` and the extras it has.
   */
  toJSON() {
    return { ...this, message: this.message };
  }
}

/**
 * Why a key stopped, in the core's words (`Stopped::user_message`, one wording for every face):
 * polar_license_stopped.js's `said(stopped)`, written from the core at pack time
 * (scripts/npm/stopped.mjs, which checks it against the core's for every kind and date). The
 * entry's `stopped` (bind's) loads it only for a denial that carries why (`#drive`, before the
 * answer becomes an error): the engine's wasm carries none of the words, and with the default
 * entries a check that never meets a stopped key never downloads them. Null until then (and
 * when it could not be loaded: the reason's sentence).
 */
let stoppedSaid = null;

/** An engine error as a LicenseError: with why the key stopped, said in place of the reason's. */
function fail(e) {
  const said = e.stopped && stoppedSaid?.(e.stopped);
  return new LicenseError(e.code, e.detail, said ? { ...e, userMessage: said } : e);
}
const invalid = (field, message) => new LicenseError('invalid_input', `${field}: ${message}`, { field });
/** An option's mistake: `field` the stable name (as natively), the detail in the JS name. */
const invalidOption = (field, name, message) => new LicenseError('invalid_input', `${name}: ${message}`, { field });

/** The JS names of the Rust option fields an engine error may name. */
const JS_NAMES = {
  organization_id: 'organizationId',
  base_url: 'baseUrl',
  grace_period: 'gracePolicy.gracePeriod',
  revalidate_after: 'gracePolicy.revalidateAfter',
  clock_tolerance: 'gracePolicy.clockTolerance',
  app_secret: 'appSecret',
  machine_id: 'machineId',
  relay_keys: 'relayKeys',
  relay_url: 'relay',
  portal_base_url: 'portalUrl',
};

/** Any of JS_NAMES' Rust names, as a word. */
const OPTION_NAMES = new RegExp(`\\b(${Object.keys(JS_NAMES).join('|')})\\b`, 'g');

const cacheError = (detail) => new LicenseError('cache_error', detail);

/** The value of an engine answer, or its LicenseError thrown. */
function value(text) {
  const answer = typeof text === 'string' ? JSON.parse(text) : text;
  if (answer.error) throw fail(answer.error);
  return answer.ok;
}

/**
 * The value of a check's answer, or its LicenseError thrown; `refreshed` false (the cache could
 * not be written) shows as `cacheRefreshed: false` on both, and as `true` on a licensed result.
 */
function checked(answer, refreshed, feature) {
  const ok = settled(answer, refreshed);
  if (feature === undefined) ok.cacheRefreshed = refreshed;
  return ok;
}

/** The value of an answer, or its LicenseError thrown (with `cacheRefreshed: false` unless `refreshed`). */
function settled(answer, refreshed) {
  if (answer.error) throw fail(refreshed ? answer.error : { ...answer.error, cacheRefreshed: false });
  return answer.ok;
}

function checkKey(key) {
  if (typeof key !== 'string') throw invalid('key', 'must be a string');
  return key;
}

function checkFeature(name) {
  if (typeof name !== 'string') throw invalid('feature', 'must be a string');
  return name;
}

/** Each call's options (the Rust engine checks their values). */
const CALL_OPTIONS = {
  validate: ['activationId', 'benefitId', 'customerId', 'incrementUsage', 'conditions'],
  activate: ['label', 'conditions', 'meta'],
  deactivate: ['activationId'],
};

function options(o, call) {
  if (o === undefined || o === null) return '';
  if (typeof o !== 'object' || Array.isArray(o)) throw invalid('options', `the options of ${call}() must be an object, got ${typeName(o)}`);
  const known = CALL_OPTIONS[call];
  const unknown = Object.keys(o).filter((k) => !known.includes(k));
  if (unknown.length) throw invalid('options', unknownMessage(`${call}() option`, unknown, known));
  for (const name of ['activationId', 'benefitId', 'customerId', 'label']) {
    if (o[name] !== undefined && typeof o[name] !== 'string') throw invalid('options', `${name} must be a string, got ${typeName(o[name])}`);
  }
  if (o.incrementUsage !== undefined && !Number.isSafeInteger(o.incrementUsage)) {
    throw invalid('options', `incrementUsage must be a whole number, got ${typeName(o.incrementUsage)}`);
  }
  for (const name of ['conditions', 'meta']) {
    const map = o[name];
    if (map === undefined) continue;
    if (map === null || typeof map !== 'object' || Array.isArray(map)) {
      throw invalid('options', `${name} must be an object of strings, numbers and booleans, got ${typeName(map)}`);
    }
    for (const [k, v] of Object.entries(map)) {
      if (!['string', 'number', 'boolean'].includes(typeof v) || (typeof v === 'number' && !Number.isFinite(v))) {
        throw invalid('options', `${name}.${k} must be a string, a finite number or a boolean, got ${typeName(v)}`);
      }
    }
  }
  try {
    return JSON.stringify(o);
  } catch (e) {
    throw invalid('options', `cannot be read: ${describe(e)}`);
  }
}

/** `null`, `an array`, `a string ("5")`, `a number (5000)`: what a value is, for messages. */
function typeName(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)})`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v === 'number' ? 'a number' : 'a boolean'} (${v})`;
  if (typeof v === 'bigint') return `a bigint (${v}n)`;
  if (typeof v === 'function') return 'a function';
  return v === undefined ? 'undefined' : `an ${typeof v}`;
}

/** Edit distance, for "did you mean". */
function distance(a, b) {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const here = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = here;
    }
  }
  return row[b.length];
}

function unknownMessage(what, unknown, known) {
  const parts = unknown.map((k) => {
    const lower = k.toLowerCase().replace(/[_-]/g, '');
    const near = known.find((n) => n.toLowerCase() === lower) ?? known.find((n) => distance(n.toLowerCase(), lower) <= 2);
    return near ? `\`${k}\` (did you mean \`${near}\`?)` : `\`${k}\``;
  });
  return `unknown ${what}${unknown.length > 1 ? 's' : ''} ${parts.join(', ')}; the ${what}s are ${known.join(', ')}`;
}

/** Every option of `new LicenseClient(options)`. */
const CLIENT_OPTIONS = [
  'organizationId',
  'server',
  'baseUrl',
  'timeout',
  'gracePolicy',
  'storage',
  'appSecret',
  'machineId',
  'requireActivation',
  'features',
  'clock',
  'cacheDir',
  'appId',
  'rememberKeys',
  'fetch',
  'relayKeys',
  'released',
  'trialBenefit',
  'trial',
  'relay',
  'portalUrl',
];
const POLICY_OPTIONS = ['revalidateAfter', 'gracePeriod', 'clockTolerance'];
/** The longest timeout, in seconds: a larger number is surely milliseconds. */
const MAX_TIMEOUT = 600;
/** The longest duration of the grace policy, in seconds (366 days). */
const MAX_POLICY = 366 * 86400;
/** The default grace period (the native one), in seconds. */
const DEFAULT_GRACE = 7 * 86400;

/** `83 minutes`, `19.2 years`: a number of seconds a person reads. */
function span(s) {
  const units = [
    [365 * 86400, 'years'],
    [86400, 'days'],
    [3600, 'hours'],
    [60, 'minutes'],
  ];
  for (const [size, name] of units) {
    if (s >= 2 * size) return `${Math.round((s / size) * 10) / 10} ${name}`;
  }
  return `${s} seconds`;
}

/**
 * Checks `new LicenseClient(options)` as the JS developer wrote it; resolves
 * `[options for the engine, { storage, clock, features, …, fetch }, given server]` or returns the
 * LicenseError the first call rejects with.
 */
function clientOptions(o) {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) {
    return invalid('options', `must be an object such as { organizationId: '…' }, got ${typeName(o)}`);
  }
  const unknown = Object.keys(o).filter((k) => !CLIENT_OPTIONS.includes(k));
  if (unknown.length) return invalid('options', unknownMessage('option', unknown, CLIENT_OPTIONS));
  const { storage, clock, features, cacheDir, appId, rememberKeys, fetch: fetchFn, ...rest } = o;
  // Perpetual fallback: the release date, 'YYYY-MM-DD', to the engine as unix seconds.
  const { released, trialBenefit } = rest;
  if (released !== undefined && !((rest.released = Date.parse(`${released}T00:00Z`) / 1000) >= 0 && new Date(rest.released * 1000).toISOString().startsWith(`${released}T`))) {
    return invalidOption('released', 'released', `must be a date 'YYYY-MM-DD', got ${typeName(released)}`);
  }
  // Trials: the trial products' benefit ids, one or a list (to the engine as a list).
  if (trialBenefit !== undefined && (rest.trialBenefit = [trialBenefit].flat()).some((b) => typeof b !== 'string')) {
    return invalidOption('trial_benefit', 'trialBenefit', `must be a benefit id or a list of them, got ${typeName(trialBenefit)}`);
  }
  // A local trial of N days (the core's rule, in the trial add-on).
  if (rest.trial !== undefined && !(Number.isInteger(rest.trial) && rest.trial > 0 && rest.trial <= 3650)) {
    return invalidOption('trial', 'trial', `must be a number of days from 1 to 3650, got ${typeName(rest.trial)}`);
  }
  // Either kind of trial stated reports a key's trial (a `trialing` subscription), as natively.
  if (rest.trial) rest.trialBenefit ??= [];
  if (rest.organizationId === undefined) {
    return invalidOption('organization_id', 'organizationId', 'required: your Polar organization id (a UUID, in Polar under Settings)');
  }
  for (const name of ['organizationId', 'server', 'baseUrl', 'appSecret', 'machineId', 'relay', 'portalUrl']) {
    if (rest[name] !== undefined && typeof rest[name] !== 'string') {
      return invalid('options', `${name} must be a string, got ${typeName(rest[name])}`);
    }
  }
  if (rest.requireActivation !== undefined && typeof rest.requireActivation !== 'boolean') {
    return invalid('options', `requireActivation must be true or false, got ${typeName(rest.requireActivation)}`);
  }
  if (cacheDir !== undefined && (typeof cacheDir !== 'string' || cacheDir === '')) {
    return invalid('options', `cacheDir must be a directory path, got ${typeName(cacheDir)}`);
  }
  if (appId !== undefined && !(typeof appId === 'string' && /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/.test(appId))) {
    return invalidOption('app_id', 'appId', `must be 1-64 ASCII letters, digits, '.', '-' or '_', not starting with '.' (e.g. 'com.example.editor'), got ${typeName(appId)}`);
  }
  if ((cacheDir !== undefined || appId !== undefined) && storage !== undefined && storage !== null && storage !== 'file') {
    return invalid('options', `${cacheDir !== undefined ? 'cacheDir' : 'appId'} is for the file store (storage: 'file', the default in node), not for storage ${typeName(storage)}`);
  }
  if (rememberKeys !== undefined && typeof rememberKeys !== 'boolean') {
    return invalid('options', `rememberKeys must be true or false, got ${typeName(rememberKeys)}`);
  }
  if (fetchFn !== undefined && typeof fetchFn !== 'function') {
    return invalid('options', `fetch must be a function called like the global fetch (e.g. Electron's net.fetch), got ${typeName(fetchFn)}`);
  }
  if (clock !== undefined && typeof clock !== 'function') {
    return invalid('options', `clock must be a function returning milliseconds since 1970, got ${typeName(clock)}`);
  }
  if (rest.server !== undefined && rest.baseUrl === undefined && !['production', 'sandbox'].includes(rest.server) && !/^https?:\/\//i.test(rest.server)) {
    return invalidOption('server', 'server', `must be 'production', 'sandbox' or a URL (https://…), got ${typeName(rest.server)}`);
  }
  const t = rest.timeout;
  if (t !== undefined) {
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) {
      return invalidOption('timeout', 'timeout', `must be a number of seconds > 0 (e.g. timeout: 5), got ${typeName(t)}`);
    }
    if (t > MAX_TIMEOUT) {
      const ms = t >= 1000 && t / 1000 <= MAX_TIMEOUT ? `; if you meant ${t} milliseconds, write timeout: ${t / 1000}` : '';
      return invalidOption('timeout', 'timeout', `is in seconds, at most ${MAX_TIMEOUT}: ${t} would be ${span(t)}${ms}`);
    }
  }
  const policy = rest.gracePolicy;
  if (policy !== undefined) {
    if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) {
      return invalid('options', `gracePolicy must be an object such as { gracePeriod: 7 * 86400 }, got ${typeName(policy)}`);
    }
    const extra = Object.keys(policy).filter((k) => !POLICY_OPTIONS.includes(k));
    if (extra.length) return invalid('options', unknownMessage('gracePolicy option', extra, POLICY_OPTIONS));
    for (const name of POLICY_OPTIONS) {
      const v = policy[name];
      if (v === undefined) continue;
      const field = `gracePolicy.${name}`;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        return invalidOption(field, field, `must be a number of seconds >= 0 (e.g. ${name}: 7 * 86400), got ${typeName(v)}`);
      }
      if (v > MAX_POLICY) {
        const ms = v >= 1000 && v / 1000 <= MAX_POLICY ? `; if you meant ${v} milliseconds, write ${name}: ${v / 1000}` : '';
        return invalidOption(field, field, `is in seconds, at most ${MAX_POLICY} (366 days): ${v} would be ${span(v)}${ms}`);
      }
    }
  }
  if (policy !== undefined) {
    // Checked by the engine too; here with the units, as a millisecond mistake often lands here.
    const grace = policy.gracePeriod ?? DEFAULT_GRACE;
    for (const [name, field] of [['revalidateAfter', 'revalidate_after'], ['clockTolerance', 'clock_tolerance']]) {
      const v = policy[name];
      if (v === undefined || v <= grace || grace === 0) continue;
      const ms = v >= 1000 && v / 1000 <= grace ? `; durations are in seconds: if you meant ${v} milliseconds, write ${name}: ${v / 1000}` : '';
      return invalidOption(field, `gracePolicy.${name}`, `must not be longer than gracePolicy.gracePeriod (${grace} seconds, ${span(grace)}): ${v} is ${span(v)}${ms}`);
    }
  }
  // Signed mode (issue #25): the relay's public keys, `KID=k4.public.…` each, as an array or
  // one comma-separated string; the engine reads them with the core's parser (RelayKeys).
  const relayKeys = rest.relayKeys;
  if (relayKeys !== undefined) {
    const list = typeof relayKeys === 'string' ? [relayKeys] : relayKeys;
    if (!Array.isArray(list) || list.some((k) => typeof k !== 'string')) {
      return invalidOption('relay_keys', 'relayKeys', `must be an array of 'KID=k4.public.…' strings or one comma-separated string, got ${typeName(relayKeys)}`);
    }
    rest.relayKeys = list.join(',');
  }
  // Copies (the checked values, not the app's objects, which it may change later).
  if (policy !== undefined) rest.gracePolicy = { ...policy };
  return [rest, { storage, clock, features, cacheDir, appId, rememberKeys: rememberKeys === true, fetch: fetchFn }, rest.baseUrl === undefined && rest.server !== undefined];
}

/** An engine error about an option, in the JS names (`server` when the app gave `server`). */
function optionError(e, viaServer) {
  const base = e.field === 'base_url' && viaServer;
  let detail = e.detail;
  if (base) detail = detail.replace(/^base_url\b/, 'server');
  detail = detail.replace(OPTION_NAMES, (n) => JS_NAMES[n]);
  return new LicenseError(e.code, detail, { ...e, field: base ? 'server' : e.field });
}

/**
 * Field names already converted: the same few dozen come in every answer, and converting each
 * with a regular expression cost a validate about 20 µs, as much as the whole gap to the SDK
 * (issue #26). Bounded: the names are the server's, and a hostile one could send endless ones.
 */
const CAMEL_NAMES = new Map();

function camelName(k) {
  let name = CAMEL_NAMES.get(k);
  if (name === undefined) {
    name = k.replace(/_+(.)?/g, (_, c) => (c ? c.toUpperCase() : ''));
    if (CAMEL_NAMES.size < 512) CAMEL_NAMES.set(k, name);
  }
  return name;
}

/** Polar's snake_case field names in camelCase, except inside the app's own maps. */
function camel(v) {
  if (Array.isArray(v)) return v.map(camel);
  if (v === null || typeof v !== 'object') return v;
  const out = {};
  for (const k of Object.keys(v)) {
    const x = v[k];
    const data = k === 'metadata' || k === 'meta' || k === 'conditions';
    out[camelName(k)] = data ? x : camel(x);
  }
  return out;
}

function camelParts(result) {
  for (const name of ['license', 'activation']) {
    if (name in result) result[name] = camel(result[name]);
  }
  return result;
}

/**
 * Gives a licensed verdict its non-enumerable `hasFeature(name)` and `toJSON()` (so the verdict
 * stays plain data for deepEqual and structured clone) from the answers Rust computed.
 */
function withFeatures(result) {
  const { listed, unlisted } = result.features;
  delete result.features;
  camelParts(result);
  Object.defineProperty(result, 'hasFeature', {
    value: function hasFeature(name) {
      checkFeature(name);
      return Object.hasOwn(listed, name) ? { ...listed[name] } : { ...unlisted, feature: name };
    },
  });
  // Plain data: the verdict's fields and `features`, every feature of the map answered.
  Object.defineProperty(result, 'toJSON', {
    value: function toJSON() {
      const features = {};
      for (const name of Object.keys(listed)) features[name] = { ...listed[name] };
      return { ...this, features };
    },
  });
  return result;
}

// ---- loading the WebAssembly ----------------------------------------------------------------

/** The entry that needs no file beside it: what most load_error hints point to. */
const INLINE = "import from 'polar-license/inline' instead (the WebAssembly inside the JS: nothing to emit, copy, fetch or read)";

/**
 * A wasm that cannot be fetched, compiled or read, as a `load_error` whose detail names the
 * cause and the fix. `entry`: `web` (fetched beside the JS), `node` (read with fs), `inline` or
 * `workerd` (imported as a compiled module).
 */
function loadError(e, entry) {
  const code = e?.code;
  const text = `${describe(e)}${typeof code === 'string' && !describe(e).includes(code) ? ` (${code})` : ''}`;
  const page = globalThis.location?.protocol;
  let hint;
  if (typeof WebAssembly !== 'object' || WebAssembly === null) {
    hint = 'this JavaScript host has no WebAssembly (a JIT-less mode such as node --jitless or a locked-down browser): polar-license cannot run in it';
  } else if (entry === 'inline' && typeof DecompressionStream !== 'function') {
    hint =
      "polar-license/inline inflates its embedded WebAssembly with DecompressionStream, which this host lacks (Chrome and Edge 80+, Firefox 113+, Safari 16.4+ have it): import from 'polar-license' instead (the .wasm file beside the JS)";
  } else if (/wasm-unsafe-eval|unsafe-eval|Content.Security.Policy|\bCSP\b/i.test(text)) {
    hint = "a Content Security Policy forbids compiling WebAssembly: add 'wasm-unsafe-eval' to script-src (e.g. script-src 'self' 'wasm-unsafe-eval'; it allows WebAssembly only, not eval)";
  } else if (entry === 'workerd') {
    hint = "polar-license's workerd entry needs polar_license_bg.wasm imported as a compiled WebAssembly module, as wrangler imports a .wasm (Workers compile none from bytes)";
  } else if (/code generation disallowed/i.test(text) || globalThis.navigator?.userAgent === 'Cloudflare-Workers') {
    hint = "this host compiles no WebAssembly from bytes (Cloudflare Workers): bundle with polar-license's `workerd` export condition (wrangler does), which imports the .wasm as a module";
  } else if (/PermissionDenied|NotCapable|Requires read access|ERR_ACCESS_DENIED/.test(text)) {
    hint = `the runtime may not read the package's polar_license_bg.wasm: allow it (deno run --allow-read, node --allow-fs-read) or ${INLINE}`;
  } else if (entry === 'web' && (page === 'file:' || /\bfile:/.test(text))) {
    hint = `this page is a file:// page (an Electron renderer loaded with loadFile), and Chromium does not fetch() files there: ${INLINE}, or serve the page over http(s) or a custom protocol`;
  } else if (entry !== 'inline' && /ENOENT|ERR_INVALID_URL|Invalid URL|failed to fetch Wasm|Failed to fetch|magic word|404/i.test(text)) {
    hint =
      "polar_license_bg.wasm is not beside the JS that loads it: a bundler that does not copy assets (esbuild, Rollup, bun build; Electron's main process bundled into one file) " +
      `left it behind, or a dev server answered with a page (Vite: optimizeDeps: { exclude: ['polar-license'] }); ${INLINE}, or copy node_modules/polar-license/polar_license_bg.wasm next to your bundle`;
  } else {
    hint = entry === 'inline' ? 'the embedded WebAssembly did not compile in this host' : `if your bundler or host cannot serve the .wasm file, ${INLINE}`;
  }
  return new LicenseError('load_error', `the WebAssembly could not be loaded: ${text}; ${hint}`);
}

/** The bytes of base64 text (the inline entry's wasm), decoded once. */
export function base64Bytes(text) {
  if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// ---- IO: fetch ----------------------------------------------------------------------------

/** Cap on a response body. Polar's answers are a few KB. */
const MAX_BODY = 1024 * 1024;

// ---- IO: storage --------------------------------------------------------------------------

/** The storage name of the per-install secret (64 hex digits). */
const SECRET = 'polar-license.install-secret';

/** `target[name](...args)`, awaited if it returns a thenable; failures are cache_error. */
async function call(target, name, args) {
  const f = target[name];
  if (typeof f !== 'function') throw cacheError(`storage has no ${name}() function`);
  let v;
  try {
    v = f.apply(target, args);
  } catch (e) {
    throw cacheError(`storage ${name}() threw: ${describe(e)}`);
  }
  if (v !== null && typeof v === 'object' && typeof v.then === 'function') {
    try {
      v = await v;
    } catch (e) {
      throw cacheError(`storage ${name}() rejected: ${describe(e)}`);
    }
  }
  return v;
}

const hasAll = (target, names) => names.every((n) => typeof target[n] === 'function');
const WEB = ['getItem', 'setItem', 'removeItem'];
const ADAPTER = ['get', 'set', 'remove'];

/**
 * `{ get, set, remove }` over a Web Storage object, an app's adapter or the file store; only
 * the file store is told whether a write must be durable (`set`'s third argument).
 */
function store(target, [get, set, remove], durability = false) {
  return {
    async get(name) {
      const v = await call(target, get, [name]);
      if (v === null || v === undefined) return null;
      if (typeof v !== 'string') throw cacheError(`storage returned a non-string value for ${JSON.stringify(name)}`);
      return v;
    },
    set: (name, text, durable) => call(target, set, durability ? [name, text, durable] : [name, text]),
    remove: (name) => call(target, remove, [name]),
  };
}

/**
 * The memory store: one per realm (a page, a worker, a node process), shared by every memory
 * client of this module, as a directory is shared natively (records are named by server,
 * organization and key), so a second client sees what the first cached. Gone with the realm.
 */
const MEMORY = new Map();

function memory() {
  return store({ get: (n) => MEMORY.get(n), set: (n, v) => void MEMORY.set(n, v), remove: (n) => void MEMORY.delete(n) }, ADAPTER);
}

/** The IndexedDB database of this realm's clients, opened once (`null` until first use). */
let database = null;

/**
 * IndexedDB where the host has it (browsers, their workers and service workers): database
 * `polar-license`, object store `kv`, one entry per storage name; it outlives the worker, so the
 * grace survives a restart as localStorage's does. `null` where there is none (node). As the
 * default (`orMemory`), a database that cannot be opened (storage blocked, a sandboxed frame)
 * turns it into the memory store, and `kind` says `memory` from then on; chosen by name, its
 * failures are the calls' `cache_error`s.
 */
function indexedDb(orMemory = false) {
  const factory = globalThis.indexedDB;
  if (!factory || typeof factory.open !== 'function') return null;
  let instead = null;
  let self = null;
  const open = () =>
    (database ??= new Promise((ok, ko) => {
      const request = factory.open('polar-license', 1);
      request.onupgradeneeded = () => request.result.createObjectStore('kv');
      request.onsuccess = () => ok(request.result);
      request.onerror = () => ko(request.error);
      request.onblocked = () => ko(new Error('the polar-license database is blocked by another connection'));
    }).catch((e) => {
      database = null;
      throw e;
    }));
  const ready = async () => {
    if (instead) return null;
    try {
      return await open();
    } catch (e) {
      if (!orMemory) throw e;
      instead = memory();
      self.kind = 'memory';
      return null;
    }
  };
  const run = async (method, args, mode, op) => {
    const db = await ready();
    if (db === null) return instead[method](...args);
    return new Promise((ok, ko) => {
      const tx = db.transaction('kv', mode);
      const request = op(tx.objectStore('kv'));
      tx.oncomplete = () => ok(request.result);
      tx.onerror = tx.onabort = () => ko(tx.error ?? request.error);
    });
  };
  self = store(
    {
      get: (name) => run('get', [name], 'readonly', (kv) => kv.get(name)),
      set: (name, text) => run('set', [name, text], 'readwrite', (kv) => kv.put(text, name)),
      remove: (name) => run('remove', [name], 'readwrite', (kv) => kv.delete(name)),
    },
    ADAPTER,
  );
  return self;
}

/** `globalThis.localStorage` when the host has a usable one (not node, not sandboxed frames). */
function local() {
  try {
    const s = globalThis.localStorage;
    if (!s || !hasAll(s, WEB)) return null;
    s.getItem('polar-license.probe'); // throws where access is denied
    return store(s, WEB);
  } catch {
    return null;
  }
}

/** `s` as the client uses it, with what it is (`kind`) and, for a file store, its `dir`. */
const kind = (s, name, dir) => Object.assign(s, { kind: name, dir });

/**
 * The client's storage: the `storage` option, else the native cache directory in node (the
 * node entries pass `files`), else localStorage, else memory (status().storage says which).
 */
function storage({ storage: s, cacheDir, appId }, files) {
  const onDisk = () => {
    const dir = cacheDir ?? files.defaultDir(appId);
    if (!dir) return null;
    const f = files.fileStore(dir);
    return kind(Object.assign(store(f, ADAPTER, true), { create: (n, t) => call(f, 'create', [n, t]) }), 'file', dir);
  };
  if (s === undefined || s === null) {
    if (files) {
      const f = onDisk();
      if (f) return f;
    }
    const l = local();
    if (l) return kind(l, 'localStorage');
    const i = indexedDb(true);
    return i ? kind(i, 'indexedDB') : kind(memory(), 'memory');
  }
  if (s === 'file') {
    if (!files) return invalid('storage', "'file' is for node, Bun, Deno and Electron's main process (the node entries of the package)");
    return onDisk() ?? invalid('storage', 'this host has no local data directory: set cacheDir');
  }
  if (s === 'memory') return kind(memory(), 'memory');
  if (s === 'indexedDB') {
    const i = indexedDb();
    return i ? kind(i, 'indexedDB') : invalid('storage', 'this host has no IndexedDB');
  }
  if (s === 'localStorage') {
    const l = local();
    return l ? kind(l, 'localStorage') : invalid('storage', 'this host has no usable localStorage');
  }
  if (typeof s === 'object') {
    if (hasAll(s, WEB)) return kind(store(s, WEB), s === globalThis.localStorage ? 'localStorage' : 'custom');
    const missing = ADAPTER.find((n) => typeof s[n] !== 'function');
    if (missing) return invalid('storage', `must be an object with get, set and remove functions (no ${missing})`);
    return kind(store(s, ADAPTER), 'custom');
  }
  return invalid('storage', 'must be "file", "localStorage", "indexedDB", "memory" or an object with get, set and remove');
}

/**
 * Slots held by a step of a check or an activation, so that two clients over the same storage
 * never interleave on one key; no lock is held while Polar is asked. Where the host has the Web
 * Locks API (`navigator.locks`: browsers, their workers, Electron's windows) a slot's lock is
 * the origin's, shared by every tab, window and worker of the origin (the scope of its
 * localStorage and IndexedDB), and waited for at most LOCK_WAIT ms: a frozen tab must not stall
 * the others, and a lock is never stolen from a holder that may still write. A lock not had in
 * time is as a storage that cannot be used: nothing is written, the answer stands
 * (`cacheRefreshed: false`). Elsewhere (node 20, Bun, Deno, a page over plain http to another
 * host, an opaque origin) the lock is this module's, in-process only; writes stay ordered by
 * sequence then (see `#drive`).
 */
const locks = new Map();

/** How long (ms) a slot's lock held elsewhere (another tab, window or worker) is waited for. */
const LOCK_WAIT = 5000;

/**
 * Slots whose check is asking Polar right now: another check of the key answers from the cache
 * at once when it can (or asks as well), instead of waiting for a hung server in turn.
 */
const asking = new Set();

/** The host's Web Locks (`navigator.locks`), or `null`: none, or it refused once (an opaque origin). */
let webLocks = typeof globalThis.navigator?.locks?.request === 'function' ? globalThis.navigator.locks : null;

/** This module's lock of `name`: resolves its release once every earlier holder released it. */
async function pageLock(name) {
  const before = locks.get(name) ?? Promise.resolve();
  let release;
  const mine = new Promise((resolve) => (release = resolve));
  const tail = before.then(() => mine);
  locks.set(name, tail);
  await before;
  return () => {
    if (locks.get(name) === tail) locks.delete(name);
    release();
  };
}

/**
 * The Web Lock `name`, exclusive, waited for at most LOCK_WAIT ms: resolves its release, `null`
 * when not had in time, or `undefined` when the host refuses Web Locks here.
 */
function webLock(name) {
  return new Promise((ok) => {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), LOCK_WAIT);
    const refused = (e) => {
      clearTimeout(timer);
      ok(e?.name === 'AbortError' ? null : undefined);
    };
    try {
      webLocks
        .request(name, { signal: abort.signal }, () => {
          clearTimeout(timer);
          // Held until this promise settles: its resolve, handed out, is the release, let go in
          // a task of its own, after this one's: Firefox hands a task's localStorage writes to
          // the other tabs when the task ends, and a tab that took the lock before then read
          // the slot as it was (tests/browser/late-grant.test.mjs, the trial race).
          return new Promise((release) => ok(() => setTimeout(release)));
        })
        .catch(refused);
    } catch (e) {
      refused(e);
    }
  });
}

/**
 * Slot `name`'s lock: resolves its release, or a `cache_error` LicenseError when it is not had
 * within LOCK_WAIT ms (held in another tab that does not let go).
 */
async function lock(name) {
  if (webLocks) {
    const release = await webLock(name);
    if (release === null) return cacheError(`this key's storage is held by another tab or window (waited ${LOCK_WAIT} ms)`);
    if (release) return release;
    // Refused (a SecurityError: an opaque origin, a sandboxed frame): this module's lock from now on.
    webLocks = null;
  }
  return pageLock(name);
}

/** `body()` under slot `name`'s lock (rejects with `cache_error` when it is not had in time). */
async function locked(name, body) {
  const release = await lock(name);
  if (release instanceof LicenseError) throw release;
  try {
    return await body();
  } finally {
    release();
  }
}

/** Runs `body`; a LicenseError it throws (the storage failed) is returned instead. */
async function attempt(body) {
  try {
    return await body();
  } catch (e) {
    if (!(e instanceof LicenseError)) throw e;
    return e;
  }
}

/** Milliseconds on a clock that only moves forward. */
const monotonic = () => globalThis.performance?.now?.() ?? Date.now();

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');


// ---- signed mode: the host verifies lease signatures ----------------------------------------

/**
 * RFC 8032's first Ed25519 test vector (the empty message): a verifier is used only if it
 * accepts this signature and refuses it with one bit changed.
 */
const RFC8032_KEY = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const RFC8032_SIG =
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';

/** Whether `verify` passes RFC 8032's vector (and refuses it forged). */
async function passes(verify) {
  try {
    const forged = unhex(RFC8032_SIG);
    forged[0] ^= 1;
    const empty = new Uint8Array(0);
    const [good, bad] = await Promise.all([
      verify(unhex(RFC8032_KEY), empty, unhex(RFC8032_SIG)),
      verify(unhex(RFC8032_KEY), empty, forged),
    ]);
    return good === true && bad === false;
  } catch {
    return false;
  }
}

/**
 * The host's WebCrypto Ed25519 as `(key, message, signature) => Promise<boolean>`, or `null`
 * where it has no `crypto.subtle` (an http:// page). Whether it has Ed25519 the vector tells.
 */
export function webCryptoEd25519(subtle) {
  if (!subtle || typeof subtle.importKey !== 'function' || typeof subtle.verify !== 'function') return null;
  const keys = new Map();
  return async (key, message, signature) => {
    const name = hex(key);
    let imported = keys.get(name);
    if (!imported) {
      imported = await subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
      if (keys.size >= 8) keys.clear();
      keys.set(name, imported);
    }
    return subtle.verify({ name: 'Ed25519' }, imported, signature, message);
  };
}

/**
 * Signed mode's signature checks, set up on the first lease a client meets (issue #38): the
 * first of the entry's `verifiers` (loaders, in its order of preference: node:crypto in the
 * node entries, the host's WebCrypto, the package's wasm add-on) that loads and passes RFC
 * 8032's vector. A client without relay keys never gets here: the engine asks for no
 * signature, and nothing is loaded. Resolves `(key, message, signature) => Promise<boolean>`;
 * none usable rejects with a `load_error`.
 */
function ed25519(verifiers, entry) {
  let ready = null;
  return () =>
    (ready ??= (async () => {
      let failure = null;
      for (const load of verifiers) {
        try {
          const verify = await load();
          if (verify && (await passes(verify))) return async (...args) => verify(...args);
        } catch (e) {
          failure = e;
        }
      }
      const hint =
        entry === 'workerd'
          ? 'this Workers runtime has no Ed25519 in its WebCrypto: update wrangler or workerd'
          : entry === 'web'
          ? 'its wasm verifier could not be loaded from beside the JS: copy node_modules/polar-license/polar_license_ed25519.js and polar_license_ed25519_bg.wasm next to your bundle, as polar_license_bg.wasm is'
          : "this entry carries no wasm verifier: import from 'polar-license' (which loads one on demand) or run in a host with Ed25519 (node >= 18, Deno, Bun, Chrome and Edge 137+, Firefox 129+, Safari 17+)";
      const why = failure ? ` (${describe(failure)})` : '';
      throw new LicenseError('load_error', `signed mode: this host's WebCrypto has no Ed25519 to verify the relay's leases, and ${hint}${why}`);
    })().catch((e) => {
      ready = null;
      throw e instanceof LicenseError ? e : loadError(e, entry);
    }));
}

/**
 * `bind` for an entry that loads nothing beside itself (polar-license/inline, the workerd
 * entry): the host's WebCrypto is its only Ed25519, no files, no trial add-on, and `stoppedSaid`
 * (polar_license_stopped.js's `said`) is bundled with it.
 */
export function bindSelfContained(load, entry, stoppedSaid) {
  return bind(load, globalThis.crypto, entry, null, [() => webCryptoEd25519(globalThis.crypto?.subtle)], null, async () => stoppedSaid);
}

/**
 * Binds the API to a way of loading the wasm (fs in node, fetch in browsers) and a
 * `crypto` with getRandomValues. The entries call it; its result is what they export, so
 * bundlers keep it even with `sideEffects: false`. `verifiers`: signed mode's Ed25519
 * verifiers, as loaders in order of preference (see `ed25519`); none is loaded until a client
 * meets a lease. `trial`: loads the local trial's add-on (its machine, `{ Trial }`), called only by a
 * client with `trial` on a check with no key and none remembered (issue #54). `stopped`: loads
 * polar_license_stopped.js's `said` (why a key stopped, in the core's words), called only for a
 * denial that carries why (issue #68; without it, such a denial says the reason's sentence).
 */
export function bind(load, crypto, entry = 'web', files = null, verifiers = [], trial = null, stopped = null) {
  let loading = null;
  const verifier = ed25519(verifiers, entry);

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
          throw loadError(e, entry);
        });
    }
    return loading;
  }

  /** `n` random bytes as hex, or undefined where the host has no getRandomValues. */
  function randomHex(n) {
    try {
      const bytes = new Uint8Array(n);
      crypto.getRandomValues(bytes);
      return hex(bytes);
    } catch {
      return undefined;
    }
  }

  function randomSecret() {
    if (crypto === null || typeof crypto !== 'object' || typeof crypto.getRandomValues !== 'function') {
      throw cacheError('no crypto.getRandomValues in this host');
    }
    const bytes = new Uint8Array(32);
    try {
      crypto.getRandomValues(bytes);
    } catch (e) {
      throw cacheError(`crypto.getRandomValues failed: ${describe(e)}`);
    }
    return hex(bytes);
  }

  /**
   * A client for one Polar organization. Every method returns a promise that resolves only on
   * success and otherwise rejects with a LicenseError: a fulfilled `check()` always means
   * licensed.
   */
  class LicenseClient {
    #options;
    #host;
    #viaServer = false;
    #problem = null;
    #engine = null;
    #store = null;

    /** Never throws: a bad option rejects every call (the first one included) instead. */
    constructor(options) {
      const checked = clientOptions(options);
      if (checked instanceof LicenseError) {
        this.#problem = checked;
        this.#host = {};
      } else {
        [this.#options, this.#host, this.#viaServer] = checked;
      }
    }

    /** The engine and the store, made on first use (a bad option rejects every call). */
    async #open() {
      if (this.#problem) throw this.#problem;
      // The storage option is the caller's to fix whether or not the wasm loads (the browser
      // entry asked for 'file' in node, say): checked before it is loaded.
      const s = this.#engine ? null : storage(this.#host, files);
      if (s instanceof LicenseError) throw s;
      await init();
      if (!this.#engine) {
        const o = this.#options;
        // Every store of the node entries is sealed with this machine's identity, as the
        // native library seals its records (a browser has none: then `machineId`, if given).
        // One that exists but cannot be read fails the call, read again by the next one.
        let sealMachineId;
        try {
          sealMachineId = await files?.osMachineId();
        } catch (e) {
          throw new LicenseError(
            'cache_error',
            `this machine's id could not be read (${e.message}); activations and the cache are bound to it`,
            { userMessage: CACHE_ERROR_SAID },
          );
        }
        let engine;
        try {
          // The options as JSON text (their types checked by clientOptions, their values by
          // the engine, which reads every JSON through the core's one reader).
          engine = new Engine(JSON.stringify(Object.assign(o, { sealMachineId })), JSON.stringify(this.#host.features ?? null));
        } catch (e) {
          throw typeof e === 'string' ? optionError(JSON.parse(e).error, this.#viaServer) : e;
        }
        [this.#engine, this.#store] = [engine, s];
      }
      return this.#engine;
    }

    /** Unix seconds from the `clock` option, else `Date.now()`. */
    #now() {
      let ms;
      try {
        ms = this.#host.clock?.();
      } catch {
        ms = undefined;
      }
      if (typeof ms !== 'number' || !Number.isFinite(ms)) ms = Date.now();
      return Math.floor(ms / 1000);
    }

    /** The last install secret the engine found usable (the same text is again). */
    #secretSeen = null;
    /** The last check's signed entitlement values (issue #68): `null` when not known. */
    #values = null;

    /** The per-install secret, created on first use (a malformed one is replaced). */
    async #secret() {
      const read = async () => {
        const text = await this.#store.get(SECRET);
        if (text !== null && text === this.#secretSeen) return text;
        const ok = text !== null && this.#engine.call('secretOk', [text]) !== undefined;
        if (ok) this.#secretSeen = text;
        return ok ? text : null;
      };
      return (
        (await read()) ??
        locked(SECRET, async () => {
          const again = await read();
          if (again) return again;
          const secret = randomSecret();
          await this.#store.set(SECRET, secret);
          // The file store keeps another process's, written meanwhile: the one stored counts.
          return (await read()) ?? secret;
        })
      );
    }

    /**
     * The engine's step `name`, driven by the package's one loop: in signed mode a step may
     * first ask for lease signatures to be verified; the answers are handed in and the same
     * step runs again (a pure function of its arguments and those answers).
     */
    async #step(name, args) {
      const engine = this.#engine;
      // A step's answer is its end, unless it asks for signatures first.
      const call = () => {
        const text = engine.call(name, args);
        return typeof text === 'string' && text.startsWith('{"verify":') ? text : JSON.stringify({ done: text ?? null });
      };
      const end = await this.#run(call(), ({ verified }) => {
        engine.call('verified', verified);
        return call();
      });
      return end.done ?? undefined;
    }

    /**
     * Runs one of this client's machines through the package's one drive loop (drive.js) with
     * this client's storage, locks, fetch and Ed25519 (`onPending`: a check in the background's
     * early answer).
     */
    #run(first, give, onPending) {
      const s = this.#store;
      let release = null;
      let mark = null;
      // This client's storage, the IO of its machines' storage wants (`null`: the run is over).
      const storage = async (want) => {
        if (want === null) {
          release?.();
          if (mark) asking.delete(mark);
        } else if (want.read) {
          const [recordName, ledgerName, clockName] = want.read;
          // The ledger first: read without the lock, while another tab writes a record and
          // then its ledger, the pair is never an older record behind a newer ledger.
          const read = await attempt(async () => [(await s.get(ledgerName)) ?? null, (await s.get(recordName)) ?? null]);
          if (read instanceof LicenseError) return { read: read.detail };
          // A clock note that cannot be read is no note (the next answer is written durably).
          const clock = await s.get(clockName).then((c) => c ?? null, () => null);
          // The clock once the bytes are read: a record another tab wrote before is no
          // clock moved back (the check reads its time again).
          return { read: [read[1], read[0], clock, this.#now()] };
        } else if (want.clock) {
          // The clock, for a machine that reads it between its load and its write (the trial).
          return { clock: this.#now() * 1000 };
        } else if (want.load) {
          // One plain entry (a local trial's record): its text, or why it could not be read.
          const text = await attempt(async () => (await s.get(want.load)) ?? null);
          return { loaded: text instanceof LicenseError ? text.detail : [text] };
        } else if (want.lock) {
          const held = await lock(want.lock);
          if (held instanceof LicenseError) return { locked: held.detail };
          release = held;
          return { locked: true };
        } else if (want.unlock) {
          release?.();
          release = null;
          return { unlocked: true };
        } else if (want.mark) {
          const mine = !asking.has(want.mark);
          if (mine) asking.add((mark = want.mark));
          if (want.pending !== undefined) onPending?.(want);
          return { marked: mine };
        } else if (want.write) {
          // The machine's compare first, when it asks one: a ledger that changed meanwhile
          // (another writer's) is answered late, and nothing is stored.
          const [name, text, keep] = want.write;
          const [ledger, holds] = want.compare ?? [];
          const failed = await attempt(async () => {
            // A first record where still none is: the file store creates it atomically
            // (node's processes share no lock), false when another's is there.
            if (ledger === name && holds === null && s.create) return !(await s.create(name, text));
            if (ledger && ((await s.get(ledger)) ?? null) !== holds) return true;
            await s.set(name, text, keep === 'volatile' ? 'volatile' : keep === undefined);
          });
          return failed === true ? { late: true } : { written: failed ? failed.detail : true };
        } else if (want.remove) {
          await attempt(() => s.remove(want.remove));
          return { removed: true };
        }
      };
      return drive(first, give, {
        fetch: this.#host.fetch,
        timeout: this.#engine.timeout,
        maxBody: MAX_BODY,
        verifier,
        storage,
        fail: (code, detail) => new LicenseError(code, detail),
      });
    }

    /** The last key's storage names `[key, slot, ledger, clock]` (the engine's, for fixed options). */
    #names = null;

    /** `key`'s storage names, `[slot, ledger, clock]`, from the engine (the last key's remembered). */
    #slots(engine, key) {
      if (this.#names?.[0] !== key) this.#names = [key, ...engine.call('names', [key]).split(' ')];
      return this.#names.slice(1);
    }

    /** What the last check handed the engine: `[record, ledger, clock, secret, record's name]`. */
    #handed;

    /** The stored record and ledger of `key` (`undefined` for none). */
    async #load(engine, key) {
      const [slot, ledgerName] = this.#slots(engine, key);
      // The ledger first: read without the lock, while another tab writes a record and then its
      // ledger, the pair is never an older record behind a newer ledger.
      const ledger = (await this.#store.get(ledgerName)) ?? undefined;
      const record = (await this.#store.get(slot)) ?? undefined;
      return [record, ledger];
    }

    /**
     * Starts the core's machine `op` (`check`, `validate`, `activate` or `deactivate`) for `key`
     * in the engine: its id and what it wants first, for `#drive`. `secret`: the install
     * secret, or the LicenseError why the storage cannot be used; `run`: more of the run's
     * options (a check's); `more`: the call's options as JSON text (a check's: the slot's
     * texts as `#check` read them, if any).
     */
    #start(engine, op, key, secret, run, more = ['']) {
      const o = { now: this.#now(), ...run };
      // Signed mode: 16 random bytes for the request's nonce (issue #53), drawn per run.
      if (this.#options.relayKeys) o.random = randomHex(16);
      if (secret instanceof LicenseError) o.cache = secret.detail;
      else o.secret = secret;
      return JSON.parse(engine.call('start', [op, key, JSON.stringify(o), ...more]));
    }

    /**
     * Runs the machine `op` (`validate`, `activate` or `deactivate`) for `key` with the call's
     * options `o` to its end: the key and options checked, the engine opened, the install
     * secret read (with `storageMayFail`, a storage that cannot be used does not fail the call),
     * the machine driven. Resolves `[end, engine, secret]`.
     */
    async #operate(op, key, o, storageMayFail) {
      checkKey(key);
      const text = options(o, op);
      const engine = await this.#open();
      const secret = await (storageMayFail ? attempt(() => this.#secret()) : this.#secret());
      return [await this.#drive(engine, this.#start(engine, op, key, secret, {}, [text])), engine, secret];
    }

    /**
     * Validates online, no cache answer: resolves `{ license, activation }` with
     * `hasFeature(name)`. With `machineId`, an `activationId` is validated with this machine's
     * fingerprint among the conditions (as `activate` stored them). The answer updates the
     * key's cache (a revocation seen here is the next check's too); it stands whatever the
     * storage does.
     */
    async validate(key, o) {
      // The answer stands whatever the storage does.
      const [end] = await this.#operate('validate', key, o, true);
      return withFeatures(value(end.done));
    }

    /**
     * Activates this installation and remembers the activation with the verdict it is (a check
     * right after it answers from the cache). Resolves `{ activation, license }`.
     */
    async activate(key, o) {
      // The storage first: when it cannot be used, no activation slot is taken.
      const [end] = await this.#operate('activate', key, o, false);
      const { ok } = end.done;
      let failed = end.cacheError === undefined ? undefined : cacheError(end.cacheError);
      if (ok && !failed && this.#host.rememberKeys) failed = await attempt(() => this.rememberKey(key));
      if (ok && failed) {
        throw cacheError(`activated as ${ok.activation.id}, but the cache could not remember it: cache error: ${failed.detail}`);
      }
      return camelParts(settled(end.done, !failed));
    }

    /** Deactivates (default: the remembered activation) and forgets it. Resolves `{ activationId }`. */
    async deactivate(key, o) {
      const [end, engine, secret] = await this.#operate('deactivate', key, o, false);
      const done = value(end.done);
      // The slot is freed whatever happens here: a failure now would read as a failed
      // deactivation. A key left behind is only remembered (forgetKey removes it).
      // Only when it freed the remembered activation (not one a later activate replaced).
      if (this.#host.rememberKeys && end.forgetKey) await attempt(() => this.#forgetRemembered(engine, secret, key));
      return done;
    }

    /** The remembered key, if this install, machine and app sealed it (else `null`). */
    async #remembered(engine, secret) {
      const text = await this.#store.get(engine.call('keySlot', []));
      return typeof text === 'string' ? (engine.call('openKey', [text, secret]) ?? null) : null;
    }

    async #forgetRemembered(engine, secret, key) {
      if ((await this.#remembered(engine, secret)) === key) await this.#store.remove(engine.call('keySlot', []));
    }

    /**
     * Remembers `key` for this organization and server in this client's storage, sealed as the
     * native library seals it (not in plain text; nothing opens it on another install, machine
     * or app), in place of any key remembered before. No request.
     */
    async rememberKey(key) {
      checkKey(key);
      const engine = await this.#open();
      const secret = await this.#secret();
      const [name, text] = value(engine.call('sealKey', [key, secret]));
      await this.#store.set(name, text, true);
    }

    /** The remembered key, or `null` (none, or one sealed elsewhere or edited). */
    async rememberedKey() {
      const engine = await this.#open();
      return this.#remembered(engine, await this.#secret());
    }

    /** Forgets the remembered key (its cache record and activation stay). */
    async forgetKey() {
      const engine = await this.#open();
      await this.#secret();
      await this.#store.remove(engine.call('keySlot', []));
    }

    /** `key`, or the remembered key when it is `undefined` (none: `invalid_input`, field `key`). */
    async #keyOrRemembered(key) {
      if (key !== undefined) return checkKey(key);
      const engine = await this.#open();
      const secret = await this.#secret();
      const remembered = await this.#remembered(engine, secret);
      const o = this.#options;
      if (remembered === null && o.trial) {
        // The local trial: the core's machine (its own wasm, loaded now), its record sealed in this
        // store under the slot's lock. Rejects with the no-key answer or clock_rollback, with
        // its `trial`.
        let t;
        try {
          t = await trial();
        } catch (e) {
          // None in this entry (trial null: the inline and workerd entries), or its files not
          // beside the JS (the web entry: a bundler that does not copy them).
          throw new LicenseError('load_error', `local trial: ${trial ? describe(e) : "not in this entry: import from 'polar-license'"}${entry === 'web' ? '; copy polar_license_trial.js and its .wasm beside your bundle' : ''}`);
        }
        // The core's machine, driven by the package's one loop with this client's storage and
        // locks: the app's own slot, the shared one read while the app's holds nothing (issue
        // #62), the first record created only where still none is.
        const run = new t.Trial(JSON.stringify(o), secret);
        try {
          throw fail((await this.#run(run.start(), (given) => run.give(JSON.stringify(given)))).done.error);
        } finally {
          run.free();
        }
      }
      // None: the core's invalid_input (field `key`), with its user message.
      return remembered ?? value(engine.call('noRememberedKey', []));
    }

    /**
     * The grace-aware verdict (with `feature`, that feature's answer): the core's check (its
     * machine, in the engine), driven by `#drive`. With `background`, the answer is given as
     * soon as the check is about to ask Polar (the cache's within the grace, the cached denial,
     * else not_yet_verified, as natively), the fresh one to `background.deliver` later.
     */
    async #check(key, feature, background) {
      const engine = this.#engine ?? (await this.#open());
      const secret = await attempt(() => this.#secret());
      const run = { at: monotonic(), feature, background: !!background };
      // The slot read first, as the machine reads it first (the ledger, then the record,
      // without the lock), so that a cached answer is one call into the engine: the texts
      // themselves, or none when they are those handed last (the engine kept them, and the
      // record opened from them). Without a usable storage nothing is read: the machine asks
      // Polar.
      const names = this.#slots(engine, key);
      let texts = [];
      let read = [];
      if (!(secret instanceof LicenseError)) {
        read = await attempt(() => this.#load(engine, key));
        if (read instanceof LicenseError) {
          run.unread = read.detail;
        } else {
          // A clock note that cannot be read is no note (the next answer is written durably);
          // none is null or undefined, both none to the engine.
          texts = [...read, await this.#store.get(names[2]).catch(() => {}), secret, names[0]];
          const h = this.#handed;
          this.#handed = texts;
          run.same = texts.every((t, i) => h?.[i] === t);
        }
      }
      // The engine reads the first three (the secret and slot are the run's and the key's).
      const start = this.#start(engine, 'check', key, secret, run, run.same ? [] : texts);
      const result = (end) => {
        if (feature === undefined) this.#values = null;
        const ok = checked(end.done, end.refreshed, feature);
        if (feature === undefined) {
          ok.relaySource = end.relaySource ?? null;
          this.#values = ok.entitlements;
        }
        return ok;
      };
      // A cached answer is the start's (one call into the engine): #drive returns it at once.
      if (!background) return result(await this.#drive(engine, start));
      let early;
      const pending = new Promise((resolve) => (early = resolve));
      const driven = this.#drive(engine, start, early);
      const first = await Promise.race([pending, driven]);
      if (first.pending === undefined) return result(first);
      background.pending = true;
      driven
        .then((end) => withFeatures(result(end)))
        .then(
          (fresh) => background.deliver(null, fresh),
          (e) => background.deliver(e, undefined),
        );
      return result({ done: first.pending, refreshed: first.refreshed });
    }

    /**
     * Drives an engine machine (`start`: its id and first want, from `#start`) to its end
     * through the package's one loop; resolves `{ done: answer, …}` (a check's `refreshed` and
     * `relaySource`, an activate's `cacheError`, a deactivate's `forgetKey`). `onPending(want)`:
     * the check is about to ask Polar, with the answer to give meanwhile (a check in the
     * background). The host's Ed25519 answers are handed to the engine's verifier first.
     */
    async #drive(engine, start, onPending) {
      const { id } = start;
      const end = await this.#run(JSON.stringify(start), (given, body) => {
        if (given.verified) {
          engine.call('verified', given.verified);
          given = { verified: true };
        }
        return engine.call('give', [id, JSON.stringify(given), body]);
      }, onPending);
      // A denial that says why the key stopped: its words loaded before it is thrown.
      if (end.done.error?.stopped && !stoppedSaid && stopped) stoppedSaid = await stopped().catch(() => null);
      return end;
    }

    /**
     * polar-license/devices's door (issue #64 item 4: a rotated key's follow, the core's machine
     * in that module's wasm): `start(options, secret, now)` makes the machine with this client's
     * options (JSON text, as the engine's), install secret and clock, and answers `[its first
     * want, give(given, body) → the next]` (the step protocol's JSON); driven by the package's
     * one loop with this client's storage, locks and fetch. Resolves its `{ done }`.
     */
    async [Symbol.for('polar-license.drive')](start) {
      await this.#open();
      const [first, give] = start(JSON.stringify(this.#options), await this.#secret(), this.#now());
      return this.#run(first, (given, body) => give(JSON.stringify(given), body));
    }

    /**
     * The grace-aware verdict. Resolves `{ license, activation, source, graceRemaining, verifiedAt,
     * reason, cacheRefreshed }` with `hasFeature(name)`.
     */
    async check(key) {
      key = key === undefined ? await this.#keyOrRemembered(key) : checkKey(key);
      return withFeatures(await this.#check(key));
    }

    /**
     * A check that never waits for Polar: settles at once as `check` would from what is stored
     * (licensed from the cache within the grace; the cached denial; else rejects with
     * `not_yet_verified`), with `pending: true` when Polar is being asked meanwhile; then
     * `onFresh(error, result)` is called once with the fresh answer (as `check` would settle).
     * With a fresh cache nothing is asked: `pending: false`, and onFresh is never called.
     */
    async checkInBackground(key, onFresh) {
      if (typeof onFresh !== 'function') throw invalid('onFresh', 'must be a function (error, result) => …');
      key = await this.#keyOrRemembered(key);
      const background = {
        pending: false,
        // An exception of the app's callback is the app's: reported as uncaught, not swallowed.
        deliver: (error, result) => {
          try {
            onFresh(error, result);
          } catch (e) {
            queueMicrotask(() => {
              throw e;
            });
          }
        },
      };
      try {
        const result = withFeatures(await this.#check(key, undefined, background));
        result.pending = background.pending;
        return result;
      } catch (e) {
        if (e instanceof LicenseError) e.pending = background.pending;
        throw e;
      }
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
      return this.#check(key, name);
    }

    /**
     * The value of entitlement `name` as the last check's licensed answer read it from its
     * signed lease, offline (issue #68): a string, number or boolean; `undefined` when the key
     * is granted no such value; `null` when values are not known (unsigned mode, a relay that
     * signs none, or the last check did not license).
     */
    entitlement(name) {
      if (typeof name !== 'string') throw invalid('name', 'must be a string');
      const values = this.#values;
      return values === null ? null : Object.hasOwn(values, name) ? values[name] : undefined;
    }

    /** What the cache holds for `key`, with no request. */
    async status(key) {
      checkKey(key);
      const engine = await this.#open();
      const secret = await this.#secret();
      const [record, ledger] = await this.#load(engine, key);
      const status = camelParts(value(await this.#step('status', [key, secret, record, ledger, this.#now()])));
      status.storage = this.#store.kind;
      if (this.#store.dir !== undefined) status.cacheDir = this.#store.dir;
      return status;
    }

    /** Forgets everything cached for `key` (Polar is not told). */
    async forget(key) {
      checkKey(key);
      const engine = await this.#open();
      const secret = await this.#secret();
      const [slot] = this.#slots(engine, key);
      await locked(slot, () => this.#store.remove(slot));
      await this.#forgetRemembered(engine, secret, key);
    }
  }

  // `hostEd25519`: the same verifier, for the package's own modules (polar-license/seat checks its
  // seat leases with it, issue #76): loaded on its first call, as for a lease.
  return { LicenseClient, init, hostEd25519: verifier };
}
