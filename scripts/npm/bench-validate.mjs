// Node benchmark of issue #6: sequential validates against the emulator through our package and
// through the official @polar-sh/sdk, in one process, interleaved.
//
//   node scripts/npm/bench-validate.mjs URL ORG PACKAGE_DIR [TOTAL=500] [ROUNDS=10]
//
// URL is a running emulator (`polar-license emulator --port 0`), ORG its organization, and
// PACKAGE_DIR the built package (target/npm/pkg, from scripts/build-npm.sh). Each client makes
// TOTAL validates of the demo key, one after another (each awaited before the next), split
// into ROUNDS rounds whose order alternates (ours first, then the SDK first, ...) so drift on
// a busy machine hits both alike. Before timing, each client validates once and the answer is
// checked (a licensed key, the same license id on both sides) so neither side measures a
// failure path. Prints one JSON object: per client the total ms, the median ms per call and
// the calls made; and `ratio` = our total / the SDK's total (issue #6 target: <= 1.0).
//
// This file lives in scripts/npm so that `@polar-sh/sdk` resolves from scripts/npm/node_modules.
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Polar } from '@polar-sh/sdk';

const DEMO_KEY = 'DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A';
const [url, org, pkgDir, totalArg = '500', roundsArg = '10'] = process.argv.slice(2);
if (!url || !org || !pkgDir) {
  console.error('usage: node scripts/npm/bench-validate.mjs URL ORG PACKAGE_DIR [TOTAL] [ROUNDS]');
  process.exit(2);
}
const total = Number.parseInt(totalArg, 10);
const rounds = Number.parseInt(roundsArg, 10);
if (!(total > 0 && rounds > 0 && total % rounds === 0)) {
  console.error(`TOTAL (${totalArg}) must be a positive multiple of ROUNDS (${roundsArg})`);
  process.exit(2);
}
const perRound = total / rounds;

const { LicenseClient } = await import(pathToFileURL(join(resolve(pkgDir), 'node.js')).href);
const ours = new LicenseClient({ organizationId: org, baseUrl: url, storage: 'memory' });
const sdk = new Polar({ serverURL: url });

const clients = {
  'polar-license': async () => (await ours.validate(DEMO_KEY)).license.id,
  '@polar-sh/sdk': async () =>
    (await sdk.customerPortal.licenseKeys.validate({ key: DEMO_KEY, organizationId: org })).id,
};

// One checked call each: both must see the same licensed key.
const ids = {};
for (const [name, call] of Object.entries(clients)) {
  ids[name] = await call();
  if (typeof ids[name] !== 'string' || ids[name].length === 0) {
    throw new Error(`${name}: no license id in the answer`);
  }
}
if (ids['polar-license'] !== ids['@polar-sh/sdk']) {
  throw new Error(`the clients disagree: ${JSON.stringify(ids)}`);
}

const times = Object.fromEntries(Object.keys(clients).map((n) => [n, []]));
const names = Object.keys(clients);
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? names : [...names].reverse();
  for (const name of order) {
    const call = clients[name];
    for (let i = 0; i < perRound; i++) {
      const t0 = performance.now();
      const id = await call();
      times[name].push(performance.now() - t0);
      if (id !== ids[name]) throw new Error(`${name}: answer changed to ${id}`);
    }
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const report = { total, rounds, node: process.version };
for (const name of names) {
  report[name] = {
    calls: times[name].length,
    total_ms: Number(sum(times[name]).toFixed(1)),
    median_ms: Number(median(times[name]).toFixed(3)),
  };
}
report.ratio = Number(
  (report['polar-license'].total_ms / report['@polar-sh/sdk'].total_ms).toFixed(3),
);
report.median_ratio = Number(
  (report['polar-license'].median_ms / report['@polar-sh/sdk'].median_ms).toFixed(3),
);
console.log(JSON.stringify(report));
