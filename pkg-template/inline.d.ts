// Types of `polar-license/inline`: the same API as `polar-license` (the WebAssembly inside the JS).
export * from './index.js';
