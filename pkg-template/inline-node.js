// The inline entry for node (>= 18, where globalThis.crypto may be missing), Bun, Deno and an
// Electron main process bundled into one file: the WebAssembly inside the JS, no file read.
import { webcrypto } from 'node:crypto';
import initWasm from './polar_license.js';
import WASM_BASE64 from './polar_license_inline.js';
import { base64Bytes, bind } from './license.js';
import { defaultDir, fileStore, osMachineId } from './files.js';

const api = bind(() => initWasm({ module_or_path: base64Bytes(WASM_BASE64) }), globalThis.crypto ?? webcrypto, 'inline', { defaultDir, fileStore, osMachineId });

export const LicenseClient = api.LicenseClient;
export const init = api.init;
export { LicenseError, REASONS } from './license.js';
