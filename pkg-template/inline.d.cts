// Types of the CommonJS entry of `polar-license/inline`:
// `const { LicenseClient } = await require('polar-license/inline').load()`.
declare const api: {
  load(): Promise<typeof import('./index.js')>;
};
export = api;
