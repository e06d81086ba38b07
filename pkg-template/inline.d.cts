// Types of the CommonJS entry of `polar-license/inline` (inline.cjs): as index.d.cts.
export * from './index.cjs';
