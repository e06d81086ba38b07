// The inline entry, `polar-license/inline`: the WebAssembly is inside the JS (gzipped, as
// base64, in polar_license_inline.js), inflated by the host (DecompressionStream) and compiled
// as it inflates, once, on first use. Nothing to emit, copy, fetch or read: works with every
// bundler (esbuild, Rollup, bun build, webpack, Vite) without configuration, on file:// pages
// (Electron renderers) and in workers. It costs about what the .wasm file does gzipped (see the
// README's sizes).
import initWasm from './polar_license.js';
import WASM_GZIP_BASE64 from './polar_license_inline.js';
import { base64Bytes, bindSelfContained } from './license.js';
import stoppedSaid from './polar_license_stopped.js';

/**
 * The wasm as a Response that inflates as it is read: the glue compiles it with
 * instantiateStreaming (as fast as compiling the plain bytes was; reading the whole inflated
 * body first costs a cold page about 10 ms more). No inflate code is shipped.
 */
function wasmResponse(gzipBase64) {
  const inflate = new DecompressionStream('gzip');
  const writer = inflate.writable.getWriter();
  // A failure shows on the readable side, where the compile reads it.
  writer.write(base64Bytes(gzipBase64)).catch(() => {});
  writer.close().catch(() => {});
  return new Response(inflate.readable, { headers: { 'content-type': 'application/wasm' } });
}

// Signed mode's Ed25519 (issue #38) is the host's WebCrypto only (a wasm verifier here would be
// in every app's bundle; polar-license, the default entry, loads one on demand), and why a key
// stopped (issue #68) is inside this entry too (nothing to fetch).
const api = bindSelfContained(() => initWasm({ module_or_path: wasmResponse(WASM_GZIP_BASE64) }), 'inline', stoppedSaid);

export const LicenseClient = api.LicenseClient;
export const init = api.init;
/** The package's Ed25519 as signed mode's leases are checked (issue #38), for polar-license/seat. */
export const hostEd25519 = api.hostEd25519;
export { LicenseError, REASONS } from './license.js';
