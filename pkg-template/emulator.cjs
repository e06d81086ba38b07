'use strict';
// CommonJS entry of `polar-license/emulator`: the ES module (emulator.js), loaded on first use.
//
//   const { startEmulator } = require('polar-license/emulator');
//   const polar = await startEmulator();
exports.startEmulator = function startEmulator(options) {
  return import('./emulator.js').then((m) => m.startEmulator(options));
};
