// The node entry (node >= 18, Electron's main process, Bun): reads the wasm with fs and
// compiles it synchronously on first use. No top-level await.
import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { initSync } from './polar_license.js';
import { bind } from './license.js';
import { defaultDir, fileStore, osMachineId } from './files.js';

const api = bind(() => {
  initSync({ module: readFileSync(new URL('./polar_license_bg.wasm', import.meta.url)) });
}, globalThis.crypto ?? webcrypto, 'node', { defaultDir, fileStore, osMachineId });

export const LicenseClient = api.LicenseClient;
export const init = api.init;
export { LicenseError, REASONS } from './license.js';
