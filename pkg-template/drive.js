// The package's one drive loop (issue #77): every machine of the package's wasms (the engine's
// check, validate, activate and deactivate and its other steps; the devices module's portal
// steps and a rotated key's follow; the seat module's hold; the usage module's report) speaks
// one step protocol (bindings/wasm-steps, written once in Rust) and is driven here. The loop
// does the IO a step asks for (fetch within the timeout, the client's storage and locks,
// the host's Ed25519, a sleep) and nothing else: every rule, schedule, retry and sentence is
// the wasm's. license.js imports it (bundled into the default entries, shipped for the inline
// ones); polar-license/devices, seat and usage import it beside them. It also holds the
// add-ons' wasm loader and the package's User-Agent.

/** The package's version (scripts/build-npm.sh writes it in, as in package.json). */
const PACKAGE_VERSION = '0.0.0-template';

/** `e` described for a detail: its name, message and cause's code. */
export function describe(e) {
  if (e instanceof Error) {
    const code = e.cause?.code;
    return `${e.name}: ${e.message}${typeof code === 'string' ? ` (${code})` : ''}`;
  }
  return typeof e === 'string' ? e : 'unknown JavaScript error';
}

/**
 * Runs a machine to its end: `first` its first want (JSON text), `give(given, body)` hands it
 * what happened (an object, a response's body as bytes) and answers its next want (JSON text).
 * Resolves the want `{ done, … }`. `io`:
 *
 * - `fetch`, `timeout` (ms), `maxBody` (bytes): `{ send, timeoutMs? }` is sent (the machine's
 *   `timeoutMs` when shorter), given back as `{ response: { status, headers } }` with the body,
 *   or `{ response: { fail, detail } }` (1: no connection, 2: timed out, 3: a bad body);
 * - `signal` (an AbortSignal: the run's owner stopping it): `{ wait: ms }` is slept (`-1`:
 *   until stopped), given back as `{ waited: true }`, or `{ stopped: true }` once the signal
 *   has aborted (before or during the wait);
 * - `verifier()` (the package's Ed25519, loaded on its first use): `{ verify: [[id, key,
 *   message, signature]…] }` (hex) is given back as `{ verified: [id, 1 or 0, …] }`;
 * - `note(value)`: `{ note }` is told to the run's owner, given back as `{ noted: true }`;
 * - `storage(want)` (a client's, license.js): the storage wants of its machines (`read`,
 *   `lock`, `unlock`, `mark`, `write`, `remove`), answered with what it gave (`undefined`: a
 *   want it does not know either); `storage(null)` once the run is over (its lock let go);
 * - `fail(code, detail)`: the error thrown for a want this loop cannot do (another version's
 *   wasm, a storage want without a store) or a machine that keeps asking for signatures.
 */
export async function drive(first, give, io) {
  // Every given is handed with a body (empty but for a response's): one shape for every wasm.
  let want = JSON.parse(first);
  const next = (given, body = NO_BODY) => (want = JSON.parse(give(given, body)));
  let rounds = 0;
  try {
    for (;;) {
      if (want.done !== undefined) return want;
      // Signatures asked again and again with nothing between: the wasm's fault, not a loop.
      rounds = want.verify ? rounds + 1 : 0;
      if (want.send) {
        const timeout = Math.min(io.timeout, want.timeoutMs ?? Infinity);
        const [given, body] = await send(want.send, timeout, io.fetch, io.maxBody);
        next(given, body);
      } else if (want.wait !== undefined) {
        next((await sleep(want.wait, io.signal)) ? { stopped: true } : { waited: true });
      } else if (want.verify && rounds <= 4) {
        next({ verified: await verifyAll(await io.verifier(), want.verify) });
      } else if (want.note !== undefined && io.note) {
        io.note(want.note);
        next({ noted: true });
      } else {
        // A client's storage wants (`read`, `lock`, `unlock`, `mark`, `write`, `remove`): done
        // by its own storage's IO (license.js), which answers what it did, or nothing.
        const given = await io.storage?.(want);
        if (given === undefined) break;
        next(given);
      }
    }
  } finally {
    io.storage?.(null);
  }
  throw io.fail('protocol_error', want.verify ? 'the package kept being asked for signatures to be verified' : `a step asked for what this package's loop does not do: ${Object.keys(want)}`);
}

/** Sleeps `ms` (`-1`: until `signal` aborts); resolves true when `signal` aborted. */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(true);
    const stop = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = ms >= 0 ? setTimeout(() => {
      signal?.removeEventListener('abort', stop);
      resolve(false);
    }, ms) : undefined;
    signal?.addEventListener('abort', stop, { once: true });
  });
}

/** The host's Ed25519 `verify` on each `[id, key, message, signature]` (hex): `[id, 1 or 0, …]`. */
async function verifyAll(verify, asks) {
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

/** Bytes of hex text. */
export function unhex(text) {
  const bytes = new Uint8Array(text.length >> 1);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.substr(2 * i, 2), 16);
  return bytes;
}

/**
 * An add-on's wasm, loaded on the first call and once: `url` the .wasm beside the module (the
 * module writes `new URL('./…_bg.wasm', import.meta.url)` itself, where bundlers see it), read
 * from disk under node and fetched else; `init` and `core` its glue's; `failed(why)` the
 * module's error for a wasm that did not load (the next call tries again).
 */
export function wasmLoader(url, init, core, failed) {
  let loading = null;
  return () => {
    loading ??= (async () => {
      let source = url;
      if (url.protocol === 'file:') {
        // Named through a variable: a browser bundler (esbuild, Vite) leaves it alone, where a
        // literal 'node:fs/promises' fails the build of an app that imports polar-license/ui.
        const fs = 'node:fs/promises';
        const { readFile } = globalThis.process?.getBuiltinModule?.(fs) ?? (await import(fs));
        source = await readFile(url);
      }
      await init({ module_or_path: source });
      return core;
    })().catch((e) => {
      loading = null;
      throw failed(e?.message ?? e);
    });
    return loading;
  };
}

// ---- IO: fetch ------------------------------------------------------------------------------

/**
 * Origins the page's (or worker's) Content-Security-Policy refused to connect to, from its
 * `securitypolicyviolation` events: a fetch blocked by `connect-src` fails exactly as an
 * unreachable server does, and only this event tells the two apart. Browsers only (node, Bun
 * and Deno never fire it).
 */
const CSP_BLOCKED = new Set();
try {
  globalThis.addEventListener?.('securitypolicyviolation', (e) => {
    if (!/^(connect-src|default-src)/.test(e.effectiveDirective ?? e.violatedDirective ?? '')) return;
    try {
      CSP_BLOCKED.add(new URL(e.blockedURI).origin);
    } catch {
      // Not a URL (`inline`, `eval`): not a fetch.
    }
  });
} catch {
  // A host whose addEventListener refuses the event name: no hint, the rest works.
}

/**
 * The `offline` detail of a fetch of `url` that failed with `e`: the CSP named when it blocked
 * the request. Its violation event is queued as a task of its own, which may come a few tasks
 * after the fetch's failure (Firefox on a loaded machine): in a browser, waited for over tasks
 * 1, 2, 4, 8 and 16 ms apart (about 31 ms at most, only for a request that failed).
 */
async function unreachable(url, e) {
  const origin = new URL(url).origin;
  for (let ms = 1; globalThis.SecurityPolicyViolationEvent && ms < 32 && !CSP_BLOCKED.has(origin); ms *= 2) {
    await new Promise((ok) => setTimeout(ok, ms));
  }
  if (!CSP_BLOCKED.has(origin)) return describe(e);
  return `${describe(e)}: this page's Content-Security-Policy blocks requests to ${origin} (connect-src): add ${origin} to connect-src`;
}

const NO_BODY = new Uint8Array(0);

/**
 * The `User-Agent` this runtime lets the package send, or `undefined` (issue #78): Polar's edge
 * (Cloudflare) refuses some bare library agents (its error 1010), and node's fetch says only
 * `node`; so a server-side runtime names the package as the native face does
 * (`polar-license/<version> (rust)`): `polar-license/<version> (node)`, `(deno)`, `(bun)`,
 * `(workers)`, told apart by their globals. A browser page or worker (Electron's renderer among
 * them) sends none: browsers forbid setting it (Chromium drops it; where one is allowed it is a
 * header Polar's CORS does not allow, and the preflight would fail every check), and the
 * browser's own agent is no bare library's.
 */
function runtimeAgent() {
  if (typeof document !== 'undefined' || typeof importScripts === 'function') return undefined;
  const named = globalThis.navigator?.userAgent ?? '';
  const p = globalThis.process?.versions;
  const runtime = globalThis.Deno ? 'deno' : p?.bun ? 'bun' : named.startsWith('Cloudflare-Workers') ? 'workers' : p?.node && 'node';
  return runtime && `polar-license/${PACKAGE_VERSION} (${runtime})`;
}

const AGENT = runtimeAgent();

/** `headers` (`[name, value]` pairs) with this runtime's `User-Agent` when it allows one. */
function withAgent(headers) {
  if (!AGENT || headers.some(([name]) => name.toLowerCase() === 'user-agent')) return headers;
  return [...headers, ['user-agent', AGENT]];
}

/**
 * Sends `ask` (`{ method?, url, headers, body? }`, a POST without a method): a whole-request
 * timeout through an AbortController, no redirects followed, a cap of `maxBody` bytes on the
 * body, status codes as data. Resolves `[given, body]`: `{ response: { status, headers } }`
 * (every header as `fetch` gives it, `[name, value]` pairs: the wasm reads them with the core's
 * own readers, as natively; two lease headers, joined by fetch, are one value that never
 * verifies) and the body's bytes, or `{ response: { fail, detail } }`, `fail` 1 (could not
 * connect), 2 (timed out) or 3 (truncated or too large). `fetchFn`: the `fetch` option
 * (Electron's `net.fetch`, an undici fetch through a proxy), else the global one; whatever it
 * throws or returns that is not a readable Response is a failure to connect, never a verdict.
 */
export async function send(ask, timeout, fetchFn, maxBody) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  const failed = (fail, detail) => [{ response: { fail, detail } }, NO_BODY];
  const tooLarge = () => {
    // Let go of the connection: the server must not stream the rest into it.
    controller.abort();
    return failed(3, `response body larger than the cap of ${maxBody} bytes`);
  };
  let reading = false;
  try {
    const method = ask.method ?? 'POST';
    const resp = await (fetchFn ?? fetch)(ask.url, {
      method,
      headers: withAgent(ask.headers),
      body: method === 'POST' ? ask.body : undefined,
      redirect: 'manual',
      signal: controller.signal,
    });
    const headers = [...resp.headers];
    if (resp.type === 'opaqueredirect') {
      // A redirect was not followed (as natively): the 3xx it was, a protocol_error.
      return [{ response: { status: 302, headers } }, new TextEncoder().encode('redirect not followed')];
    }
    // What is no HTTP answer is a failure to connect, as natively (the core's rule; node's
    // fetch rejects these itself, a browser may hand them over): a status outside 100-599, a
    // content-length sent more than once (the browser joins them with ", ").
    const length = resp.headers.get('content-length') ?? undefined;
    if (resp.status < 100 || resp.status > 599 || length?.includes(',')) {
      controller.abort();
      return failed(1, `no HTTP answer from ${new URL(ask.url).origin} (status ${resp.status}${length?.includes(',') ? ', content-length sent twice' : ''})`);
    }
    if (Number(length?.trim()) > maxBody) return tooLarge();
    reading = true;
    const body = await readCapped(resp, maxBody);
    if (body === null) return tooLarge();
    return [{ response: { status: resp.status, headers } }, body];
  } catch (e) {
    if (controller.signal.aborted) return failed(2, `no complete answer within ${Math.floor(timeout)} ms`);
    if (reading) return failed(3, `truncated response body: ${describe(e)}`);
    return failed(1, await unreachable(ask.url, e));
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The body, read as it streams, or `null` as soon as it passes `max` (a body without a
 * `content-length`, or with a false one, is never read whole).
 */
async function readCapped(resp, max) {
  if (!resp.body) {
    const whole = new Uint8Array(await resp.arrayBuffer());
    return whole.length > max ? null : whole;
  }
  const reader = resp.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) return null;
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return body;
}
