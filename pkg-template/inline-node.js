// The inline entry for node (>= 18, where globalThis.crypto may be missing), Bun, Deno and an
// Electron main process bundled into one file: the WebAssembly inside the JS (gzipped, as
// base64), no file read.
//
// As the node entry (node.js, issue #26): node:zlib is taken when the wasm is loaded, and
// globalThis.crypto is read only to make an install secret (node 18 without it gets
// node:crypto's, imported when the wasm is loaded). Dynamic imports, which bundlers turn into
// require() in a CommonJS bundle.
import initWasm from './polar_license.js';
import WASM_GZIP_BASE64 from './polar_license_inline.js';
import { base64Bytes, bind, webCryptoEd25519 } from './license.js';
import { defaultDir, fileStore, nodeEd25519, osMachineId } from './files.js';

/** node 18's WebCrypto (node:crypto's), set when the wasm is loaded. */
let webcrypto;

const api = bind(
  async () => {
    const { gunzipSync } = globalThis.process?.getBuiltinModule?.('node:zlib') ?? (await import('node:zlib'));
    // `in`: reading globalThis.crypto would load it.
    if (!('crypto' in globalThis)) webcrypto = (await import('node:crypto')).webcrypto;
    await initWasm({ module_or_path: gunzipSync(base64Bytes(WASM_GZIP_BASE64)) });
  },
  { getRandomValues: (bytes) => (globalThis.crypto ?? webcrypto).getRandomValues(bytes) },
  'inline',
  { defaultDir, fileStore, osMachineId },
  // Signed mode's Ed25519 (issue #38), on the first lease: node:crypto's, else WebCrypto's
  // (every runtime this entry serves has one of them).
  [nodeEd25519, () => webCryptoEd25519((globalThis.crypto ?? webcrypto)?.subtle)],
);

export const LicenseClient = api.LicenseClient;
export const init = api.init;
export { LicenseError, REASONS } from './license.js';
