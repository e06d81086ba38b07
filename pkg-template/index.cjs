'use strict';
// CommonJS entry. The package is ES modules (in browsers the wasm loads asynchronously), so
// CommonJS code loads it once with `await load()`:
//
//   const { load } = require('polar-license');
//   const { LicenseClient, LicenseError } = await load();
exports.load = function load() {
  return import('./node.js');
};
// The ES module's names, read straight off require(), say how to get them instead of being
// `undefined` ("LicenseClient is not a constructor").
for (const name of ['LicenseClient', 'LicenseError', 'REASONS', 'init']) {
  Object.defineProperty(exports, name, {
    enumerable: false,
    get() {
      throw new Error(
        `polar-license is an ES module: from CommonJS use ` +
          `\`const { ${name} } = await require('polar-license').load()\``,
      );
    },
  });
}
