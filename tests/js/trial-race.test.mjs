// Two first trial checks at once, in two node processes over one cache directory (issue #54's
// local trial): each process reads the trial's slot, finds no record, and only then does the
// other go on. Node has no lock across processes (license.js's slot locks are the module's),
// so both read "none" before either writes; what must still hold is one trial per install:
// both checks answer the same start and end, a later check sees that trial (not one restarted
// or extended), and a trial that ended never restarts because the other process wrote
// meanwhile.
//
// The meeting point is the `clock` option: license.js reads the clock once on a check with no
// key, between the slot's read and its write. The first process ("early", clock at START)
// stops there until the second has read the slot too; the second ("late", its clock `ahead`
// seconds on) stops there until the first has answered, so its write comes last. Each waits
// at most WAIT ms, and says whether the other came: both must (the race is played, both
// read no record, not avoided).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { EMULATOR, ORG, PACKAGE_DIR, pkg, rejection } from './emulator.mjs';

const run = promisify(execFile);
const { LicenseClient } = await pkg();

const DAY = 86400;
const START = Math.floor(Date.now() / 1000);
const WAIT = 20_000;

// One process's first check: argv is [cache dir, meeting dir, me, wait for, clock (s), days,
// where]. It marks `<me>-read` where it is held, waits for `<wait for>`, and marks `<me>-done`
// once answered; it prints the trial it was answered and whether it met. Held at the clock's
// first reading (`where` is `clock`: the trial's slot read, its record not yet written), or at
// the host's first random bytes (`secret`: the install secret read, none found, the one made
// not yet written; the trial's record is sealed with it).
const CHILD = `import { LicenseClient } from ${JSON.stringify(pathToFileURL(join(PACKAGE_DIR, 'node.js')).href)};
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const [cacheDir, meet, me, waitFor, at, days, where] = process.argv.slice(2);
const nap = new Int32Array(new SharedArrayBuffer(4));
let met = null;
const hold = () => {
  if (met === null) {
    writeFileSync(join(meet, me + '-read'), '');
    const until = Date.now() + ${WAIT};
    while (!(met = existsSync(join(meet, waitFor))) && Date.now() < until) Atomics.wait(nap, 0, 0, 5);
  }
};
const clock = () => {
  if (where === 'clock') hold();
  return Number(at) * 1000;
};
// The package's WebCrypto (node 18 has no global one: node:crypto's, the same object).
const crypto = globalThis.crypto ?? (await import('node:crypto')).webcrypto;
const random = crypto.getRandomValues.bind(crypto);
crypto.getRandomValues = (bytes) => {
  if (where === 'secret') hold();
  return random(bytes);
};
const client = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(EMULATOR)}, cacheDir, trial: Number(days), clock });
let out;
try {
  await client.check();
  out = { error: 'licensed' };
} catch (e) {
  out = { code: e.code, trial: e.trial ?? null };
}
writeFileSync(join(meet, me + '-done'), '');
console.log(JSON.stringify({ ...out, met }));
`;

/**
 * The two first checks at once on a fresh cache directory, a trial of `days`, the late
 * process's clock `ahead` seconds after the early one's, both held `where` (`clock`: the
 * install secret made first, by this process). Resolves `[early, late, dir]`.
 */
async function race(root, days, ahead, where = 'clock') {
  const cacheDir = join(root, `cache-${ahead}-${where}`);
  const meet = join(root, `meet-${ahead}-${where}`);
  await mkdir(meet, { recursive: true });
  if (where === 'clock') await new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, cacheDir }).rememberedKey();
  const script = join(root, 'child.mjs');
  const child = (me, waitFor, at) =>
    run(process.execPath, [script, cacheDir, meet, me, waitFor, String(at), String(days), where], { timeout: 60_000 }).then(({ stdout }) =>
      JSON.parse(stdout),
    );
  const [early, late] = await Promise.all([child('early', 'late-read', START), child('late', 'early-done', START + ahead)]);
  // The loser's temp file is not left behind.
  assert.deepEqual((await readdir(cacheDir)).filter((f) => f.endsWith('.tmp')), []);
  return [early, late, cacheDir];
}

/** A later check on `cacheDir` at `at`: its trial. */
async function later(cacheDir, days, at) {
  const e = await rejection(new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, cacheDir, trial: days, clock: () => at * 1000 }).check());
  return e.trial;
}

test('two processes whose first trial checks both read no record start one trial (issue #54)', async () => {
  const root = await mkdtemp(join(tmpdir(), 'polar-license-trial-race-'));
  try {
    await writeFile(join(root, 'child.mjs'), CHILD);
    // A day apart: both answer the early process's trial, and later checks see it.
    {
      const [early, late, dir] = await race(root, 14, DAY);
      const trial = { local: true, state: 'active', startedAt: START, endsAt: START + 14 * DAY, daysLeft: 14 };
      assert.deepEqual(early, { code: 'invalid_input', trial, met: true }, JSON.stringify(late));
      assert.deepEqual(late, { code: 'invalid_input', trial: { ...trial, daysLeft: 13 }, met: true });
      assert.deepEqual(await later(dir, 14, START + 2 * DAY), { ...trial, daysLeft: 12 });
    }
    // Twenty days apart, a trial of 14: the late process's check finds the trial ended; it
    // does not restart it, nor does a later check see one restarted.
    {
      const [early, late, dir] = await race(root, 14, 20 * DAY);
      const ended = { local: true, state: 'ended', startedAt: START, endsAt: START + 14 * DAY, daysLeft: 0 };
      assert.equal(early.trial.startedAt, START, JSON.stringify(early));
      assert.deepEqual(late, { code: 'invalid_input', trial: ended, met: true });
      assert.deepEqual(await later(dir, 14, START + 21 * DAY), ended);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('two processes that both found no install secret on a fresh install seal one trial with one secret (issue #54)', async () => {
  // The late process's secret, written over the early one's, would leave the early one's trial
  // record unopenable: refused from then on, for every process.
  const root = await mkdtemp(join(tmpdir(), 'polar-license-trial-race-'));
  try {
    await writeFile(join(root, 'child.mjs'), CHILD);
    const [early, late, dir] = await race(root, 14, 60, 'secret');
    const trial = { local: true, state: 'active', startedAt: START, endsAt: START + 14 * DAY, daysLeft: 14 };
    assert.deepEqual(early, { code: 'invalid_input', trial, met: true }, JSON.stringify(late));
    assert.deepEqual(late, { code: 'invalid_input', trial, met: true });
    assert.deepEqual(await later(dir, 14, START + DAY), { ...trial, daysLeft: 13 });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
