// The remembered key on the npm face (issue #15, item 5): off by default; `rememberKeys`
// remembers the key of a good activation, `rememberKey` one of the app's choice; `check()`
// with no key checks it; the stored text is the native format (the command line reads what
// node remembered and the reverse); it is never plain text; another app secret opens nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, EMULATOR, ORG, mapStorage, newKey, pkg, rejection, relay } from './emulator.mjs';

const run = promisify(execFile);
const { LicenseClient } = await pkg();
const linux = process.platform === 'linux' && CLI ? false : 'needs the native command line (POLAR_CLI) on Linux';

function noKey(e) {
  assert.equal(e.code, 'invalid_input', e.message);
  assert.equal(e.field, 'key');
  assert.match(e.detail, /no license key is remembered here/);
  // The core's user message, as natively: a first run, not a key with a typo.
  assert.equal(e.userMessage, 'This app is not licensed yet: enter your license key.');
}

test('off by default; rememberKeys remembers a good activation, check() needs no key, deactivate forgets it', async () => {
  const storage = mapStorage();
  const key = await newKey({ limit_activations: 2 });
  const plain = new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage });
  await plain.activate(key, { label: 'a' });
  assert.equal(await plain.rememberedKey(), null);
  noKey(await rejection(plain.check()));

  const client = () => new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage, rememberKeys: true });
  const { activation } = await client().activate(key, { label: 'b' });
  // A new client on the same storage (a restart): the key is there, the verdict cached.
  const later = client();
  assert.equal(await later.rememberedKey(), key);
  const verdict = await later.check();
  assert.deepEqual([verdict.source, verdict.activation.id], ['cache', activation.id]);
  // Stored sealed, in the native format: no plain key anywhere in the storage.
  const hidden = key.slice(0, -6);
  for (const [name, text] of storage.map) assert.ok(!String(text).includes(hidden), `${name}: ${text}`);
  const names = [...storage.map.keys()].filter((n) => n.startsWith('polar-license.key-'));
  assert.equal(names.length, 1, `${[...storage.map.keys()]}`);
  assert.match(storage.map.get(names[0]), /^polar-license-key v1\n[0-9a-f]{32}\n[0-9a-f]+\n$/);

  // A denied activation of another key changes nothing.
  const revoked = await newKey({ status: 'revoked', limit_activations: 2 });
  const denied = await rejection(later.activate(revoked, { label: 'c' }));
  assert.equal(denied.code, 'inactive');
  assert.equal(await later.rememberedKey(), key);

  await later.deactivate(key);
  assert.equal(await later.rememberedKey(), null);
  noKey(await rejection(later.check()));
});

// Issue #27: freeing the activation a later activate replaced forgot the remembered key while
// the current activation stayed, so the next check() failed with invalid_input.
test('deactivating a replaced activation keeps the remembered key; the current one forgets it', async () => {
  const storage = mapStorage();
  const key = await newKey({ limit_activations: 3 });
  const client = new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage, rememberKeys: true });
  const old = (await client.activate(key, { label: 'a' })).activation.id;
  const current = (await client.activate(key, { label: 'a' })).activation.id;
  assert.notEqual(old, current);
  assert.equal((await client.deactivate(key, { activationId: old })).activationId, old);
  assert.equal(await client.rememberedKey(), key);
  // A fulfilled check() is licensed (a refusal rejects): the current activation, no key passed.
  const verdict = await client.check();
  assert.equal(verdict.activation.id, current);
  await client.deactivate(key);
  assert.equal(await client.rememberedKey(), null);
});

test('rememberKey, forgetKey and forget; bad keys refused before anything is stored', async () => {
  const storage = mapStorage();
  const key = await newKey();
  const client = new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage });
  for (const bad of ['', ' padded', 'line\n', 42]) {
    const e = await rejection(client.rememberKey(bad));
    assert.deepEqual([e.code, e.field], ['invalid_input', 'key'], `${JSON.stringify(bad)}: ${e.message}`);
  }
  assert.ok(![...storage.map.keys()].some((n) => n.includes('.key-')));
  await client.rememberKey(key);
  assert.equal((await client.check()).source, 'online');
  await client.forgetKey();
  assert.equal(await client.rememberedKey(), null);
  await client.forgetKey();
  // Forgetting the key keeps the record.
  assert.equal((await client.check(key)).source, 'cache');
  await client.rememberKey(key);
  await client.forget(key);
  assert.equal(await client.rememberedKey(), null);
  // An edited key is none.
  await client.rememberKey(key);
  const name = [...storage.map.keys()].find((n) => n.startsWith('polar-license.key-'));
  const text = storage.map.get(name);
  storage.map.set(name, text.slice(0, -2) + (text.at(-2) === '0' ? '1' : '0') + '\n');
  assert.equal(await client.rememberedKey(), null);
  noKey(await rejection(client.check()));
  // Another app secret is another app.
  await client.rememberKey(key);
  const other = new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage, appSecret: 'another app' });
  assert.equal(await other.rememberedKey(), null);
  const bad = await rejection(new LicenseClient({ organizationId: ORG, rememberKeys: 'yes' }).rememberedKey());
  assert.deepEqual([bad.code, bad.field], ['invalid_input', 'options']);
  assert.match(bad.detail, /rememberKeys must be true or false/);
});

test('node remembers, the command line checks with no --key; the command line remembers, node checks', { skip: linux }, async () => {
  const polar = await relay(EMULATOR);
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-remember-'));
  const cli = async (...argv) => {
    const all = [...argv, '--org', ORG, '--base-url', polar.url, '--cache-dir', dir, '--no-machine-binding', '--json'];
    try {
      return JSON.parse((await run(CLI, all, { timeout: 30_000 })).stdout);
    } catch (e) {
      if (typeof e.stdout === 'string' && e.stdout.startsWith('{')) return JSON.parse(e.stdout);
      throw e;
    }
  };
  try {
    const client = () => new LicenseClient({ organizationId: ORG, baseUrl: polar.url, cacheDir: dir, rememberKeys: true });
    const key = await newKey({ limit_activations: 2 });
    const { activation } = await client().activate(key, { label: 'node' });
    const checked = await cli('check');
    assert.deepEqual([checked.outcome, checked.activation_id], ['licensed', activation.id], JSON.stringify(checked));
    const keyFile = (await readdir(dir)).find((n) => /^key-[0-9a-f]{32}\.cache$/.test(n));
    assert.ok(keyFile, `${await readdir(dir)}`);
    assert.ok(!(await readFile(join(dir, keyFile), 'utf8')).includes(key.slice(0, -6)));

    const forgot = await cli('forget-key');
    assert.equal(forgot.outcome, 'done');
    assert.equal(await client().rememberedKey(), null);

    const other = await newKey();
    const remembered = await cli('remember', '--key', other);
    assert.equal(remembered.outcome, 'done', JSON.stringify(remembered));
    assert.equal(await client().rememberedKey(), other);
    assert.equal((await client().check()).license.key, other);
  } finally {
    await polar.close();
    await rm(dir, { recursive: true, force: true });
  }
});
