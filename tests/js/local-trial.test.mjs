// The local trial (issue #54 item 4) through the installed npm package: a client built with
// `trial: N` whose check has no key and none remembered runs the core's trial step (its own
// wasm, polar_license_trial_bg.wasm, loaded then and only then) and rejects with the no-key
// answer (`invalid_input`, field `key`), or `clock_rollback`, carrying `trial: { local: true,
// state, startedAt, endsAt, daysLeft }`. The record is sealed in the client's store under the
// trial slot, the native library's bytes: the command line reads the trial node started. The
// app's clock moves with the `clock` option; Polar is never asked. (tests/trials.rs: the Rust
// face.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CLI, EMULATOR, NEEDS_CLI, ORG, PACKAGE_DIR, mapStorage, newKey, pkg, rejection } from './emulator.mjs';

const run = promisify(execFile);
const { LicenseClient } = await pkg();

const DAY = 86400;
const START = Math.floor(Date.now() / 1000);

/** A client with a local trial of `days`, on `storage`, its clock `offset()` seconds ahead. */
function client(storage, days, offset = () => 0, Client = LicenseClient) {
  return new Client({
    organizationId: ORG,
    baseUrl: EMULATOR,
    storage,
    clock: () => (START + offset()) * 1000,
    ...(days === undefined ? {} : { trial: days }),
  });
}

test('a check with no key runs the local trial: started, counting down, ended', async () => {
  const storage = mapStorage();
  let day = 0;
  const c = client(storage, 14, () => Math.round(day * DAY));
  const first = await rejection(c.check());
  assert.deepEqual([first.code, first.field], ['invalid_input', 'key']);
  assert.deepEqual(first.trial, { local: true, state: 'active', startedAt: START, endsAt: START + 14 * DAY, daysLeft: 14 });
  // Sealed in the store, in a slot of its own.
  const slots = [...storage.map.keys()].filter((k) => k.includes('trial-'));
  assert.equal(slots.length, 1, JSON.stringify([...storage.map.keys()]));

  day = 3.5;
  const later = await rejection(c.check());
  assert.deepEqual([later.trial.state, later.trial.daysLeft, later.trial.startedAt], ['active', 11, START]);
  // Another client on the same store: the same trial, not a new one.
  assert.equal((await rejection(client(storage, 14, () => Math.round(day * DAY)).check())).trial.startedAt, START);

  day = 15;
  const ended = await rejection(c.check());
  assert.deepEqual([ended.code, ended.field], ['invalid_input', 'key']);
  assert.deepEqual(ended.trial, { local: true, state: 'ended', startedAt: START, endsAt: START + 14 * DAY, daysLeft: 0 });
});

test('a clock set back past the tolerance is clock_rollback; an edited record is refused', async () => {
  const storage = mapStorage();
  let day = 0;
  const c = client(storage, 7, () => Math.round(day * DAY));
  await rejection(c.check());
  day = 6;
  assert.equal((await rejection(c.check())).trial.daysLeft, 1);
  day = 1;
  const back = await rejection(c.check());
  assert.equal(back.code, 'clock_rollback');
  assert.deepEqual([back.trial.state, back.trial.daysLeft, back.trial.endsAt], ['refused', 0, null]);

  // The record edited (its start moved on): its seal fails, the trial is refused.
  const [slot] = [...storage.map.keys()].filter((k) => k.includes('trial-'));
  storage.map.set(slot, storage.map.get(slot).replace(String(START), String(START + 6 * DAY)));
  day = 7;
  const edited = await rejection(c.check());
  assert.deepEqual([edited.code, edited.trial.state, edited.trial.daysLeft], ['invalid_input', 'refused', 0]);
});

/** The app of `appSecret` on `storage`, its trial of 14 days, its clock `day()` days after START. */
const trialApp = (storage, day) => (appSecret) =>
  new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage, appSecret, trial: 14, clock: () => (START + day() * DAY) * 1000 });

test('two apps of one organization on one store each have their own trial (issue #62)', async () => {
  const storage = mapStorage();
  let day = 0;
  const app = trialApp(storage, () => day);
  const editor = app('editor-secret');
  const viewer = app('viewer-secret');
  assert.equal((await rejection(editor.check())).trial.startedAt, START);
  day = 3;
  // Before issue #62 the viewer found the editor's record in the one shared slot: refused.
  const v = (await rejection(viewer.check())).trial;
  assert.deepEqual([v.state, v.startedAt, v.daysLeft], ['active', START + 3 * DAY, 14]);
  day = 5;
  assert.deepEqual([(await rejection(editor.check())).trial.daysLeft, (await rejection(viewer.check())).trial.daysLeft], [9, 12]);
  assert.equal([...storage.map.keys()].filter((k) => k.includes('trial-')).length, 2);
});

test('a record in the slot every app shared is adopted by its own app, ignored by another', async () => {
  const storage = mapStorage();
  let day = 0;
  const app = trialApp(storage, () => day);
  const editor = app('editor-secret');
  await rejection(editor.check());
  const [own] = [...storage.map.keys()].filter((k) => k.includes('trial-'));
  // Where a release before issue #62 kept it: the shared slot (its name is the native
  // library's: the trial's slot of an app with no secret is not it, so read it from the
  // viewer's first check, which reads the shared slot while its own is empty).
  const sealed = storage.map.get(own);
  storage.map.delete(own);
  const reads = [];
  const get = storage.get.bind(storage);
  storage.get = async (name) => { reads.push(name); return get(name); };
  day = 2;
  const viewer = app('viewer-secret');
  assert.equal((await rejection(viewer.check())).trial.startedAt, START + 2 * DAY, 'not the editor\'s trial');
  const shared = reads.filter((k) => k.includes('trial-')).find((k) => !storage.map.has(k) || storage.map.get(k) === undefined);
  assert.ok(shared, `the shared slot was read: ${reads}`);
  storage.map.set(shared, sealed);
  storage.map.delete([...storage.map.keys()].find((k) => k.includes('trial-') && k !== shared));
  // The viewer's own trial is gone now; the shared record is the editor's: the viewer starts
  // anew and leaves it, the editor adopts it (its start kept) into its own slot.
  day = 4;
  assert.equal((await rejection(viewer.check())).trial.startedAt, START + 4 * DAY);
  assert.equal(storage.map.get(shared), sealed);
  const adopted = (await rejection(editor.check())).trial;
  assert.deepEqual([adopted.startedAt, adopted.daysLeft], [START, 10]);
  assert.ok(storage.map.has(own), 'copied to the editor\'s slot');
  assert.equal(storage.map.get(shared), sealed, 'the shared slot left as it was');
});

test('trial days that are no whole number from 1 to 3650 are invalid_input, field trial', async () => {
  for (const bad of [0, 3651, 1.5, '14', -1]) {
    const e = await rejection(client(mapStorage(), bad).check());
    assert.deepEqual([e.code, e.field], ['invalid_input', 'trial'], String(bad));
  }
});

test('without trial, a check with no key is the no-key answer with no trial', async () => {
  const e = await rejection(client(mapStorage(), undefined).check());
  assert.deepEqual([e.code, e.field, e.trial], ['invalid_input', 'key', undefined]);
});

test('the add-on is loaded only by a check with no key and none remembered', async () => {
  // The package without the trial add-on's files: whatever loads it fails with load_error.
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-notrial-'));
  try {
    await cp(PACKAGE_DIR, dir, { recursive: true });
    const addon = (await readdir(dir)).filter((f) => f.startsWith('polar_license_trial'));
    assert.deepEqual(addon.sort(), ['polar_license_trial.js', 'polar_license_trial_bg.wasm']);
    for (const f of addon) await rm(join(dir, f));
    const { LicenseClient: Bare } = await import(pathToFileURL(join(dir, 'node.js')).href);

    // A keyed check with `trial` set: licensed, nothing loaded.
    const key = await newKey();
    const storage = mapStorage();
    const keyed = await client(storage, 14, undefined, Bare).check(key);
    assert.equal(keyed.license.key, key);
    // A remembered key answers a check with no key: nothing loaded either.
    const remembering = new Bare({ organizationId: ORG, baseUrl: EMULATOR, storage: mapStorage(), trial: 14, rememberKeys: true });
    await remembering.activate(key, { label: 'node' });
    assert.equal((await remembering.check()).license.key, key);
    // Only the trial's own check loads it (and here cannot).
    const e = await rejection(client(mapStorage(), 14, undefined, Bare).check());
    assert.equal(e.code, 'load_error', `${e.code}: ${e.message}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the command line reads the trial node started (one record, the native bytes)', { skip: NEEDS_CLI }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-trialdir-'));
  try {
    // Started by node two days ago (its clock set back), so the command line cannot start a
    // trial of its own at the same second and pass.
    const clock = () => Date.now() - 2 * DAY * 1000;
    const e = await rejection(new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, cacheDir: dir, trial: 30, clock }).check());
    assert.equal(e.trial.state, 'active');
    const started = new Date(e.trial.startedAt * 1000).toISOString().replace('.000Z', 'Z');
    const argv = ['check', '--org', ORG, '--base-url', EMULATOR, '--cache-dir', dir, '--no-machine-binding', '--trial', '30', '--json'];
    const out = JSON.parse((await run(CLI, argv, { timeout: 30_000 })).stdout);
    assert.equal(out.outcome, 'trial', JSON.stringify(out));
    assert.deepEqual([out.trial.started_at, out.trial.days_left], [started, 28], JSON.stringify(out));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
