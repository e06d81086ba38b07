// Types of the CommonJS entry (index.cjs): the names of index.d.ts, so that
// `import { LicenseClient } from 'polar-license'` compiles in a TypeScript project that emits
// CommonJS (`"module": "commonjs"`, or `node16`/`nodenext` without `"type": "module"`), and
// `const { LicenseClient } = require('polar-license')` is typed.
import type * as esm from './index.js' with { 'resolution-mode': 'import' };

export type * from './index.js' with { 'resolution-mode': 'import' };
export declare const LicenseClient: typeof esm.LicenseClient;
export type LicenseClient = esm.LicenseClient;
export declare const LicenseError: typeof esm.LicenseError;
export type LicenseError = esm.LicenseError;
export declare const REASONS: typeof esm.REASONS;
export declare const init: typeof esm.init;
/** The ES module itself, loaded once (LicenseClient's methods load it on first use). */
export declare function load(): Promise<typeof esm>;
