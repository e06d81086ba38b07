'use strict';
// CommonJS entry of `polar-license/inline` (the WebAssembly inside the JS):
//
//   const { load } = require('polar-license/inline');
//   const { LicenseClient, LicenseError } = await load();
//
// A bundler that turns the app into one CommonJS file (esbuild --format=cjs for an Electron
// main process) bundles the import() below with it.
exports.load = function load() {
  return import('./inline-node.js');
};
for (const name of ['LicenseClient', 'LicenseError', 'REASONS', 'init']) {
  Object.defineProperty(exports, name, {
    enumerable: false,
    get() {
      throw new Error(
        `polar-license is an ES module: from CommonJS use ` +
          `\`const { ${name} } = await require('polar-license/inline').load()\``,
      );
    },
  });
}
