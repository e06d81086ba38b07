// polar-license/relay where neither the node nor the workerd entry applies (a service worker,
// a bundler's web build): fetches the relay's wasm next to this file on first use.
import initWasm, { RelayCore } from './polar_license_relay.js';
import { bindRelay } from './relay-handler.js';

let loading = null;
export const createRelay = bindRelay(async () => {
  loading ??= initWasm({ module_or_path: new URL('./polar_license_relay_bg.wasm', import.meta.url) });
  await loading;
  return RelayCore;
});
export { importSigningKey } from './relay-handler.js';
