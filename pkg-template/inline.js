// The inline entry, `polar-license/inline`: the WebAssembly is inside the JS (base64, in
// polar_license_inline.js), decoded and compiled once on first use. Nothing to emit, copy,
// fetch or read: works with every bundler (esbuild, Rollup, bun build, webpack, Vite) without
// configuration, on file:// pages (Electron renderers) and in workers. It costs about a third
// more bytes than the wasm file and gives up streaming compilation (see the README's sizes).
import initWasm from './polar_license.js';
import WASM_BASE64 from './polar_license_inline.js';
import { base64Bytes, bind } from './license.js';

const api = bind(() => initWasm({ module_or_path: base64Bytes(WASM_BASE64) }), globalThis.crypto, 'inline');

export const LicenseClient = api.LicenseClient;
export const init = api.init;
export { LicenseError, REASONS } from './license.js';
