// Types of the CommonJS entry: `const { LicenseClient } = await require('polar-license').load()`.
declare const api: {
  load(): Promise<typeof import('./index.js')>;
};
export = api;
