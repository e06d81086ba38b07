'use strict';
// CommonJS entry of `polar-license/inline` (the WebAssembly inside the JS):
//
//   const { LicenseClient, LicenseError } = require('polar-license/inline');
//
// A bundler that turns the app into one CommonJS file (esbuild --format=cjs for an Electron
// main process) bundles the import() below with it. See commonjs.cjs.
module.exports = require('./commonjs.cjs')(() => import('./inline-node.js'));
