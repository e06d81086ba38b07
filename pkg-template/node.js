// The node entry (node >= 18, Electron's main process, Bun): reads the wasm with fs and
// compiles it synchronously on first use. No top-level await.
//
// Nothing but the package's own modules is imported up front (issue #26: the first cached check
// after a cold start): node:fs is taken from the runtime when it has process.getBuiltinModule
// (node >= 20.16), else imported when the wasm is loaded; globalThis.crypto, whose first read
// loads node's WebCrypto (about 1 ms), is read only to make an install secret, and node 18, which
// has none, gets node:crypto's, imported when the wasm is loaded.
import { initSync } from './polar_license.js';
import { bind, webCryptoEd25519 } from './license.js';
import { defaultDir, fileStore, nodeEd25519, osMachineId } from './files.js';

/** node 18's WebCrypto (node:crypto's), set when the wasm is loaded. */
let webcrypto;

const api = bind(
  async () => {
    const { readFileSync } = globalThis.process?.getBuiltinModule?.('node:fs') ?? (await import('node:fs'));
    // `in`: reading globalThis.crypto would load it.
    if (!('crypto' in globalThis)) webcrypto = (await import('node:crypto')).webcrypto;
    initSync({ module: readFileSync(new URL('./polar_license_bg.wasm', import.meta.url)) });
  },
  { getRandomValues: (bytes) => (globalThis.crypto ?? webcrypto).getRandomValues(bytes) },
  'node',
  { defaultDir, fileStore, osMachineId },
  // Signed mode's Ed25519 (issue #38), loaded on the first lease: node:crypto's, else the
  // runtime's WebCrypto, else the package's wasm verifier read from beside this file.
  [
    nodeEd25519,
    () => webCryptoEd25519((globalThis.crypto ?? webcrypto)?.subtle),
    async () => {
      const { readFileSync } = globalThis.process?.getBuiltinModule?.('node:fs') ?? (await import('node:fs'));
      const addon = await import('./polar_license_ed25519.js');
      addon.initSync({ module: readFileSync(new URL('./polar_license_ed25519_bg.wasm', import.meta.url)) });
      return addon.verify;
    },
  ],
  // The local trial's add-on (issue #54), read from beside this file by a client with `trial`
  // on its first check with no key and none remembered.
  async () => {
    const { readFileSync } = globalThis.process?.getBuiltinModule?.('node:fs') ?? (await import('node:fs'));
    const addon = await import('./polar_license_trial.js');
    addon.initSync({ module: readFileSync(new URL('./polar_license_trial_bg.wasm', import.meta.url)) });
    return addon;
  },
  // Why a key stopped, in the core's words (issue #68), read from beside this file only for a
  // denial that says why.
  async () => (await import('./polar_license_stopped.js')).default,
);

export const LicenseClient = api.LicenseClient;
export const init = api.init;
/** The package's Ed25519 as signed mode's leases are checked (issue #38), for polar-license/seat. */
export const hostEd25519 = api.hostEd25519;
export { LicenseError, REASONS } from './license.js';
