// What polar-license/devices, polar-license/seat and polar-license/usage share: loading a
// module's own wasm once, and sending the requests its core builds over `fetch`. Their steps and
// rules are their cores'; this is I/O. Not shipped on its own: scripts/build-npm.sh bundles it
// into each of devices.js, seat.js and usage.js (an app imports any of them; the default entries
// none).

/**
 * A module's wasm, loaded on the first call and once: `url` the .wasm beside the module (the
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

/** The package's version (scripts/build-npm.sh writes it in, as in package.json). */
const PACKAGE_VERSION = '0.0.0-template';

/**
 * The `User-Agent` this runtime lets the package send (`polar-license/<version> (node)`, …),
 * or `undefined` in a browser page or worker: license.js's `runtimeAgent`, whose comment says
 * why (issue #78). Kept here too: this file is bundled into each module without license.js.
 */
function runtimeAgent() {
  if (typeof document !== 'undefined' || typeof importScripts === 'function') return undefined;
  const named = globalThis.navigator?.userAgent ?? '';
  const p = globalThis.process?.versions;
  const runtime = globalThis.Deno ? 'deno' : p?.bun ? 'bun' : named.startsWith('Cloudflare-Workers') ? 'workers' : p?.node && 'node';
  return runtime && `polar-license/${PACKAGE_VERSION} (${runtime})`;
}

const AGENT = runtimeAgent();

/**
 * Sends a request a core built (`{method, url, headers: [name, value][], body}`; a body only
 * with a POST) within `timeout` ms, its answer read up to `maxBody` characters: `[status, headers
 * as name\nvalue\n…, body]`, or status 0 with why there is none (`timed out`, the error's
 * message, `an answer larger than <tooLarge>`).
 */
export async function send(fetchFn, timeout, req, maxBody, tooLarge) {
  let res;
  let body;
  try {
    res = await fetchFn(req.url, {
      method: req.method,
      headers: Object.fromEntries(
        AGENT && !req.headers.some(([name]) => name.toLowerCase() === 'user-agent')
          ? [...req.headers, ['user-agent', AGENT]]
          : req.headers,
      ),
      body: req.method === 'POST' ? req.body : undefined,
      signal: AbortSignal.timeout(timeout),
      redirect: 'manual',
    });
  } catch (e) {
    const timedOut = e?.name === 'TimeoutError' || e?.name === 'AbortError';
    return [0, '', timedOut ? 'timed out' : String(e?.message ?? e)];
  }
  try {
    body = await res.text();
  } catch (e) {
    return [0, '', String(e?.message ?? e)];
  }
  if (body.length > maxBody) return [0, '', `an answer larger than ${tooLarge}`];
  // fetch's header names and values hold no line break.
  return [res.status, [...res.headers].flat().join('\n'), body];
}
