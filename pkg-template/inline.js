// The inline entry, `polar-license/inline`: the WebAssembly is inside the JS (gzipped, as
// base64, in polar_license_inline.js), inflated (DecompressionStream) and compiled once on first
// use. Nothing to emit, copy, fetch or read: works with every bundler (esbuild, Rollup, bun
// build, webpack, Vite) without configuration, on file:// pages (Electron renderers) and in
// workers. It costs about what the .wasm file does gzipped, and gives up streaming compilation
// (see the README's sizes).
import initWasm from './polar_license.js';
import WASM_GZIP_BASE64 from './polar_license_inline.js';
import { base64Bytes, bind } from './license.js';

/** The wasm's bytes: base64 decoded, then gunzipped by the host (no inflate code shipped). */
const wasmBytes = () =>
  new Response(new Blob([base64Bytes(WASM_GZIP_BASE64)]).stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer();

const api = bind(() => initWasm({ module_or_path: wasmBytes() }), globalThis.crypto, 'inline');

export const LicenseClient = api.LicenseClient;
export const init = api.init;
export { LicenseError, REASONS } from './license.js';
