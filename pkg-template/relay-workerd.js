// polar-license/relay on Cloudflare Workers (the `workerd` export condition, which wrangler
// and workerd use): the wasm comes in as a compiled module import (Workers compile no wasm
// from bytes at run time). The client's address is Cloudflare's `cf-connecting-ip`.
import { initSync, RelayCore } from './polar_license_relay.js';
import wasmModule from './polar_license_relay_bg.wasm';
import { bindRelay } from './relay-handler.js';

let loaded = false;
const load = () => {
  if (!loaded) {
    initSync({ module: wasmModule });
    loaded = true;
  }
  return RelayCore;
};
export const createRelay = bindRelay(load);
/** Reads `KID=k4.secret.…` (the core's reader) into a non-extractable WebCrypto key. */
export const importSigningKey = (text, subtle = globalThis.crypto?.subtle) => importKey(text, subtle, load);
export { durableStorage } from './relay-handler.js';
import { bindDurable, importSigningKey as importKey } from './relay-handler.js';

/** `relayStore(optionsOf)`: the Durable Object class holding the verdict store;
 * `relayWorker(optionsOf)`: the Worker's handler in front of it (see the README). */
export const { relayStore, relayWorker } = bindDurable(createRelay);
