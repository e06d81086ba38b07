'use strict';
// CommonJS entry (node, Electron's main process, TypeScript compiled to CommonJS):
//
//   const { LicenseClient, LicenseError } = require('polar-license');
//
// LicenseClient's methods load the ES module (node.js) on first use; `await load()` gives the
// ES module itself. See commonjs.cjs.
module.exports = require('./commonjs.cjs')(() => import('./node.js'));
