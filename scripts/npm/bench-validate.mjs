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
import { performance } from 'node:perf_hooks';
import { Polar } from '@polar-sh/sdk';
import { DEMO_KEY, benchArgs, importPackage } from './bench-args.mjs';

const { url, org, pkg, counts, given } = benchArgs('bench-validate.mjs', { TOTAL: '500', ROUNDS: '10' });
const { TOTAL: total, ROUNDS: rounds } = counts;
if (!(total > 0 && rounds > 0 && total % rounds === 0)) {
  console.error(`TOTAL (${given.TOTAL}) must be a positive multiple of ROUNDS (${given.ROUNDS})`);
  process.exit(2);
}
const perRound = total / rounds;

const { LicenseClient } = await importPackage(pkg);
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
