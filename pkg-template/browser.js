// The browser entry (bundlers such as Vite or webpack, a plain <script type="module">,
// Electron renderers, Deno, workers): fetches the wasm next to this file on first use.
import initWasm from './polar_license.js';
import { bind } from './license.js';

const api = bind(
  () => initWasm({ module_or_path: new URL('./polar_license_bg.wasm', import.meta.url) }),
  globalThis.crypto,
);

export const LicenseClient = api.LicenseClient;
export const init = api.init;
export { LicenseError, REASONS } from './license.js';
