// The inline entry for node (>= 18, where globalThis.crypto may be missing), Bun, Deno and an
// Electron main process bundled into one file: the WebAssembly inside the JS (gzipped, as
// base64), no file read.
import { webcrypto } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import initWasm from './polar_license.js';
import WASM_GZIP_BASE64 from './polar_license_inline.js';
import { base64Bytes, bind } from './license.js';
import { defaultDir, fileStore, osMachineId } from './files.js';

const api = bind(() => initWasm({ module_or_path: gunzipSync(base64Bytes(WASM_GZIP_BASE64)) }), globalThis.crypto ?? webcrypto, 'inline', { defaultDir, fileStore, osMachineId });

export const LicenseClient = api.LicenseClient;
export const init = api.init;
export { LicenseError, REASONS } from './license.js';
