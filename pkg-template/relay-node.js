// polar-license/relay for node (>= 20), Bun and Deno: reads the relay's wasm with fs on first
// use. `createRelay(options).fetch(request)` is the handler (Deno.serve and Bun.serve take it
// as is; node: see createNodeListener).
import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { initSync, RelayCore } from './polar_license_relay.js';
import { bindRelay, importSigningKey as importKey } from './relay-handler.js';

let loaded = false;
const load = () => {
  if (!loaded) {
    initSync({ module: readFileSync(new URL('./polar_license_relay_bg.wasm', import.meta.url)) });
    loaded = true;
  }
  return RelayCore;
};
export const createRelay = bindRelay(load, globalThis.crypto ?? webcrypto);

/** importSigningKey with node's WebCrypto (node 18 has no global `crypto`), the key read by the core. */
export const importSigningKey = (text, subtle = (globalThis.crypto ?? webcrypto).subtle) => importKey(text, subtle, load);

/**
 * A `node:http` request listener around the handler: `http.createServer(createNodeListener(relay))`.
 * The client's address (`req.socket.remoteAddress`) is the per-IP limit's identity unless the
 * relay was given `clientIp` or `clientIpHeader`.
 */
export function createNodeListener(relay) {
  return async (req, res) => {
    try {
      const host = req.headers.host ?? 'localhost';
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
      }
      const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
      const request = new Request(new URL(req.url ?? '/', `http://${host}`), {
        method: req.method,
        headers,
        body: hasBody ? req : undefined,
        duplex: hasBody ? 'half' : undefined,
      });
      const response = await relay.fetch(request, undefined, { clientIp: req.socket.remoteAddress });
      res.writeHead(response.status, [...response.headers].flat());
      res.end(Buffer.from(await response.arrayBuffer()));
    } catch {
      // A request node took and fetch cannot (a TRACE, a bad Host): the core's failure answer,
      // with its CORS rule (the configured origins), as every other answer of the relay.
      if (res.headersSent) return res.end();
      const failed = await relay.failed(req.headers.origin);
      res.writeHead(failed.status, [...failed.headers].flat());
      res.end(Buffer.from(await failed.arrayBuffer()));
    }
  };
}
