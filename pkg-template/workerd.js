// The client on Cloudflare Workers (the `workerd` export condition of `polar-license` and
// `polar-license/inline`, which wrangler and workerd use): Workers compile no WebAssembly from
// bytes at run time, so neither the fetched .wasm (polar-license) nor the embedded one
// (polar-license/inline) can load there. The .wasm comes in as a compiled module import instead,
// as `polar-license/relay` does. A Worker keeps no files and has no localStorage or IndexedDB:
// the default store is memory (one isolate's), and `storage` takes an object with get, set and
// remove (a KV namespace or a Durable Object's storage behind them) for a cache that outlives it.
import { initSync } from './polar_license.js';
import wasmModule from './polar_license_bg.wasm';
import { bindSelfContained } from './license.js';
import stoppedSaid from './polar_license_stopped.js';

// Signed mode's Ed25519: the Workers runtime's WebCrypto has it. Why a key stopped, in the
// core's words (issue #68): bundled with the Worker.
const api = bindSelfContained(() => initSync({ module: wasmModule }), 'workerd', stoppedSaid);

export const LicenseClient = api.LicenseClient;
export const init = api.init;
/** The package's Ed25519 as signed mode's leases are checked (issue #38), for polar-license/seat. */
export const hostEd25519 = api.hostEd25519;
export { LicenseError, REASONS } from './license.js';
