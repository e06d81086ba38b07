// The inline entry for node (>= 18, where globalThis.crypto may be missing), Bun, Deno and an
// Electron main process bundled into one file: the WebAssembly inside the JS (gzipped, as
// base64), no file read.
//
// As the node entry (node.js, issue #26): node:zlib is taken when the wasm is loaded, and
// globalThis.crypto is read only to make an install secret (node 18 without it gets
// node:crypto's, imported when the wasm is loaded). Dynamic imports, which bundlers turn into
// require() in a CommonJS bundle.
import { initSync } from './polar_license.js';
import WASM_GZIP_BASE64 from './polar_license_inline.js';
import { base64Bytes, bind, webCryptoEd25519 } from './license.js';
import stoppedSaid from './polar_license_stopped.js';
import { defaultDir, fileStore, nodeEd25519, osMachineId } from './files.js';

/** node 18's WebCrypto (node:crypto's), set when the wasm is loaded. */
let webcrypto;

const api = bind(
  async () => {
    const { gunzipSync } = globalThis.process?.getBuiltinModule?.('node:zlib') ?? (await import('node:zlib'));
    // `in`: reading globalThis.crypto would load it.
    if (!('crypto' in globalThis)) webcrypto = (await import('node:crypto')).webcrypto;
    // node's Buffer decodes base64 natively (the JS loop: about 2 ms). Compiled synchronously,
    // as the node entry does: the glue's asynchronous init asks whether its argument is a
    // `Response`, and the first read of node's global `Response` loads its fetch (undici:
    // about 20 ms) that a cached check never uses.
    const gz = globalThis.Buffer?.from(WASM_GZIP_BASE64, 'base64') ?? base64Bytes(WASM_GZIP_BASE64);
    initSync({ module: gunzipSync(gz) });
  },
  { getRandomValues: (bytes) => (globalThis.crypto ?? webcrypto).getRandomValues(bytes) },
  'inline',
  { defaultDir, fileStore, osMachineId },
  // Signed mode's Ed25519 (issue #38), on the first lease: node:crypto's, else WebCrypto's
  // (every runtime this entry serves has one of them).
  [nodeEd25519, () => webCryptoEd25519((globalThis.crypto ?? webcrypto)?.subtle)],
  null,
  // Why a key stopped, in the core's words (issue #68): inside this entry too (nothing to read).
  async () => stoppedSaid,
);

export const LicenseClient = api.LicenseClient;
export const init = api.init;
/** The package's Ed25519 as signed mode's leases are checked (issue #38), for polar-license/seat. */
export const hostEd25519 = api.hostEd25519;
export { LicenseError, REASONS } from './license.js';
