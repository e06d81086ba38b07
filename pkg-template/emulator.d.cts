// Types of the CommonJS entry of `polar-license/emulator`:
// `const polar = await require('polar-license/emulator').startEmulator()`.
declare const api: {
  startEmulator: typeof import('./emulator.js').startEmulator;
};
export = api;
