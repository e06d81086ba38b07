'use strict';
// CommonJS entry. The package is ES modules (in browsers the wasm loads asynchronously), so
// CommonJS code loads it once with `await load()`:
//
//   const { load } = require('polar-license');
//   const { LicenseClient, LicenseError } = await load();
exports.load = function load() {
  return import('./node.js');
};
