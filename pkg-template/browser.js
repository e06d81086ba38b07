// The browser entry (bundlers such as Vite or webpack, a plain <script type="module">,
// Electron renderers served over http(s) or a custom protocol, workers): fetches the wasm next
// to this file on first use (streaming compilation). Bundlers that do not copy the .wasm
// (esbuild, Rollup, bun build) and file:// pages: polar-license/inline (inline.js).
import initWasm from './polar_license.js';
import { bind, webCryptoEd25519 } from './license.js';

const api = bind(
  () => initWasm({ module_or_path: new URL('./polar_license_bg.wasm', import.meta.url) }),
  globalThis.crypto,
  'web',
  null,
  // Signed mode's Ed25519 (issue #38), loaded on the first lease: the host's WebCrypto, else
  // the package's wasm verifier fetched from beside this file.
  [
    () => webCryptoEd25519(globalThis.crypto?.subtle),
    async () => {
      // Not a literal specifier: bundlers leave the add-on out of the app's bundle (esbuild would
      // inline a literal one); like the .wasm, it is fetched from beside this file.
      const glue = new URL('./polar_license_ed25519.js', import.meta.url).href;
      const addon = await import(/* webpackIgnore: true */ /* @vite-ignore */ glue);
      await addon.default({ module_or_path: new URL('./polar_license_ed25519_bg.wasm', import.meta.url) });
      return addon.verify;
    },
  ],
  // The local trial's add-on (issue #54), fetched from beside this file (as the verifier) by a
  // client with `trial` on its first check with no key and none remembered.
  async () => {
    const glue = new URL('./polar_license_trial.js', import.meta.url).href;
    const addon = await import(/* webpackIgnore: true */ /* @vite-ignore */ glue);
    await addon.default({ module_or_path: new URL('./polar_license_trial_bg.wasm', import.meta.url) });
    return addon;
  },
  // Why a key stopped, in the core's words (issue #68), fetched from beside this file (as the
  // add-ons) only for a denial that says why.
  async () => {
    const words = new URL('./polar_license_stopped.js', import.meta.url).href;
    return (await import(/* webpackIgnore: true */ /* @vite-ignore */ words)).default;
  },
);

export const LicenseClient = api.LicenseClient;
export const init = api.init;
/** The package's Ed25519 as signed mode's leases are checked (issue #38), for polar-license/seat. */
export const hostEd25519 = api.hostEd25519;
export { LicenseError, REASONS } from './license.js';
