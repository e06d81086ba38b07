// polar-license/relay where neither the node nor the workerd entry applies (a service worker,
// a bundler's web build): fetches the relay's wasm next to this file on first use.
import initWasm, { RelayCore } from './polar_license_relay.js';
import { bindRelay, importSigningKey as importKey } from './relay-handler.js';

let loading = null;
const load = async () => {
  loading ??= initWasm({ module_or_path: new URL('./polar_license_relay_bg.wasm', import.meta.url) });
  await loading;
  return RelayCore;
};
export const createRelay = bindRelay(load);
/** Reads `KID=k4.secret.…` (the core's reader) into a non-extractable WebCrypto key. */
export const importSigningKey = (text, subtle = globalThis.crypto?.subtle) => importKey(text, subtle, load);
