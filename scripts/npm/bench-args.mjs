// What the node benchmarks in this folder (bench-validate.mjs, bench-lease.mjs) share: the
// emulator's demo key, their command line `URL ORG PACKAGE_DIR [COUNT...]` read with the
// counts' defaults (a usage line and exit 2 when one of the three is missing), and the built
// package's node entry imported from PACKAGE_DIR.
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export const DEMO_KEY = 'DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A';

/**
 * Reads `node scripts/npm/SCRIPT URL ORG PACKAGE_DIR [COUNT...]`. `counts` names each count
 * and its default, in order: `{ N: '2000', ROUNDS: '5' }`. Returns the URL, the organization,
 * the package directory resolved, each count parsed (`counts`) and as given (`given`).
 */
export function benchArgs(script, counts) {
  const [url, org, pkgDir, ...rest] = process.argv.slice(2);
  const names = Object.keys(counts);
  if (!url || !org || !pkgDir) {
    const optional = names.map((name) => `[${name}]`).join(' ');
    console.error(`usage: node scripts/npm/${script} URL ORG PACKAGE_DIR ${optional}`);
    process.exit(2);
  }
  const given = Object.fromEntries(names.map((name, i) => [name, rest[i] ?? counts[name]]));
  const parsed = Object.fromEntries(names.map((name) => [name, Number.parseInt(given[name], 10)]));
  return { url, org, pkg: resolve(pkgDir), counts: parsed, given };
}

/** Imports `file` of the built package in `pkg` (an absolute directory). */
export const importPackage = (pkg, file = 'node.js') => import(pathToFileURL(join(pkg, file)).href);
