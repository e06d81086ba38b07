// A storage copied to another machine opens to nothing, whatever the store (issue #28's first
// two promises on the npm face), and a machine id that exists but cannot be read is a
// cache_error, as natively, never a seal without the machine.
//
// "Another machine" is real: a child node process in a private mount namespace (unshare -m)
// whose /etc is a fresh tmpfs holding another machine-id, or a directory in its place (an id
// that cannot be read). Linux and root only (CI runs as root); elsewhere the tests say why
// they skip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CONSUMER, EMULATOR, ORG, newKey } from './emulator.mjs';

const run = promisify(execFile);
const skip =
  process.platform !== 'linux'
    ? 'needs Linux (a private mount namespace)'
    : process.getuid?.() !== 0
      ? 'needs root (a private mount namespace)'
      : false;

// The child: opens the storage kept in a JSON file with a custom adapter (not the file store:
// every store must be sealed with the machine) and prints what it finds.
const CHILD = `
import { readFileSync, writeFileSync } from 'node:fs';
import { LicenseClient } from 'polar-license';
const [file, mode, key] = process.argv.slice(2);
const load = () => { try { return JSON.parse(readFileSync(file, 'utf8')); } catch { return {}; } };
const storage = {
  get: async (name) => load()[name] ?? null,
  set: async (name, value) => { const all = load(); all[name] = value; writeFileSync(file, JSON.stringify(all)); },
  remove: async (name) => { const all = load(); delete all[name]; writeFileSync(file, JSON.stringify(all)); },
};
const client = new LicenseClient({ organizationId: '${ORG}', baseUrl: '${EMULATOR}', storage, rememberKeys: true });
const out = {};
try {
  if (mode === 'activate') {
    out.activated = (await client.activate(key, { label: 'first machine' })).activation.id;
  }
  out.remembered = await client.rememberedKey();
  const status = await client.status(key);
  out.state = status.state;
  out.untrusted = status.untrusted;
  out.standing = status.standing;
  out.sealedToMachine = status.sealedToMachine;
} catch (e) {
  out.error = { code: e.code, detail: e.detail };
}
console.log(JSON.stringify(out));
`;

/**
 * Runs the child on `file` as this machine (`machineId` undefined), or in a mount namespace
 * where /etc/machine-id holds `machineId` (a string) or is a directory (`null`).
 */
async function child(file, mode, key, machineId) {
  const script = join(CONSUMER, 'machine-child.mjs');
  await writeFile(script, CHILD);
  const node = [process.execPath, script, file, mode, key];
  const quote = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;
  const etc =
    machineId === null
      ? 'mkdir /etc/machine-id'
      : `printf '%s\\n' ${quote(machineId)} > /etc/machine-id`;
  const argv =
    machineId === undefined
      ? node
      : ['unshare', '-m', '--propagation', 'private', 'sh', '-c',
         `mount -t tmpfs tmpfs /etc && ${etc} && exec ${node.map(quote).join(' ')}`];
  const { stdout } = await run(argv[0], argv.slice(1), { cwd: CONSUMER });
  return JSON.parse(stdout.trim().split('\n').pop());
}

test('a store copied to another machine opens to nothing; on this machine it opens', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-machine-'));
  try {
    const key = await newKey();
    const first = join(dir, 'store.json');
    const made = await child(first, 'activate', key, undefined);
    assert.equal(made.error, undefined, JSON.stringify(made));
    assert.deepEqual([made.remembered, made.state, made.standing, made.sealedToMachine],
      [key, 'present', 'licensed', true]);
    // The same bytes, copied: on this machine they open (the control) ...
    const copy = join(dir, 'copy.json');
    await writeFile(copy, await (await import('node:fs/promises')).readFile(first));
    const here = await child(copy, 'look', key, undefined);
    assert.deepEqual([here.remembered, here.state, here.standing], [key, 'present', 'licensed']);
    // ... and on a machine with another id they open to nothing: no remembered key, a record
    // that is not trusted (its seal carries the first machine).
    const elsewhere = await child(copy, 'look', key, 'a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5');
    assert.equal(elsewhere.error, undefined, JSON.stringify(elsewhere));
    assert.deepEqual(
      [elsewhere.remembered, elsewhere.state, elsewhere.untrusted, elsewhere.standing],
      [null, 'untrusted', 'bad_mac', 'none'],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a machine id that exists but cannot be read is a cache_error, never a seal without it', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-machine-'));
  try {
    const key = await newKey();
    const unreadable = await child(join(dir, 'store.json'), 'activate', key, null);
    assert.equal(unreadable.error?.code, 'cache_error', JSON.stringify(unreadable));
    assert.match(unreadable.error.detail, /this machine's id could not be read \(\/etc\/machine-id: EISDIR\)/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
