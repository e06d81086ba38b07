// The node file store (issue #14): by default a node client keeps its cache in the native
// library's directory (`<data dir>/polar-license/<app id>`, here under a temporary
// XDG_DATA_HOME) and format, so the `polar-license` command line reads what node wrote and
// node reads what the command line wrote; `status().storage` says where a cache lives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CLI, CONSUMER, EMULATOR, ORG, PACKAGE_DIR, newKey, pkg, rejection, relay } from './emulator.mjs';

const run = promisify(execFile);
const { LicenseClient } = await pkg();
const linux = process.platform === 'linux' && CLI ? false : 'needs the native command line (POLAR_CLI) on Linux';

/** Runs the native command line on `dir` for `key` (no machine binding: the JS default); its `--json`. */
async function native(dir, base, key, command, ...rest) {
  const argv = [command, '--org', ORG, '--base-url', base, '--cache-dir', dir, '--key', key, '--no-machine-binding', '--json', ...rest];
  try {
    return JSON.parse((await run(CLI, argv, { timeout: 30_000 })).stdout);
  } catch (e) {
    if (typeof e.stdout === 'string' && e.stdout.startsWith('{')) return JSON.parse(e.stdout);
    throw e;
  }
}

/** `body(dir)` with `dir` a new temporary directory (its name from `prefix`), removed after. */
async function inTempDir(prefix, body) {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The cache files of `dir`: records, ledgers, the install secret. */
async function files(dir) {
  return (await readdir(dir)).filter((n) => !n.endsWith('.lock')).sort();
}

test('a node client with no storage option keeps its cache in the native directory, named by the main script', async () => {
  await inTempDir('polar-license-data-', async (data) => {
    const key = await newKey();
    const script = join(CONSUMER, 'my-editor.mjs');
    await writeFile(
      script,
      `import { LicenseClient } from 'polar-license';
const client = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(EMULATOR)} });
const verdict = await client.check(${JSON.stringify(key)});
const status = await client.status(${JSON.stringify(key)});
console.log(JSON.stringify({ source: verdict.source, storage: status.storage, cacheDir: status.cacheDir, state: status.state }));
`,
    );
    const env = { ...process.env, XDG_DATA_HOME: data };
    const first = JSON.parse((await run(process.execPath, [script], { cwd: CONSUMER, env })).stdout);
    const dir = join(data, 'polar-license', 'my-editor');
    assert.deepEqual(first, { source: 'online', storage: 'file', cacheDir: dir, state: 'present' });
    const names = await files(dir);
    assert.equal(names.length, 3, `${names}`);
    assert.ok(names.includes('install-secret'));
    assert.equal((await readFile(join(dir, 'install-secret'))).length, 32, 'the secret is 32 raw bytes, as natively');
    const record = names.find((n) => /^v2-[0-9a-f]{32}\.cache$/.test(n));
    assert.ok(record, `${names}`);
    assert.ok(names.includes(record.replace('.cache', '-seq.cache')));
    assert.match(await readFile(join(dir, record), 'utf8'), /^polar-license-cache v2\n/);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, record))).mode & 0o777, 0o600);
    // A second run (a restart) answers from the file: the grace survives the process.
    const second = JSON.parse((await run(process.execPath, [script], { cwd: CONSUMER, env })).stdout);
    assert.equal(second.source, 'cache');
  });
});

test("status().storage says which storage a client uses: memory and an adapter when chosen", async () => {
  const key = await newKey();
  const memory = new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory' });
  assert.equal((await memory.status(key)).storage, 'memory');
  assert.equal((await memory.status(key)).cacheDir, undefined);
  const map = new Map();
  const custom = new LicenseClient({
    organizationId: ORG,
    baseUrl: EMULATOR,
    storage: { get: (n) => map.get(n), set: (n, v) => void map.set(n, v), remove: (n) => void map.delete(n) },
  });
  assert.equal((await custom.status(key)).storage, 'custom');
});

test('memory storage is one store per realm: a second client sees what the first cached', async () => {
  const key = await newKey();
  const first = new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory' });
  assert.equal((await first.check(key)).source, 'online');
  const second = new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory' });
  const status = await second.status(key);
  assert.deepEqual([status.storage, status.state], ['memory', 'present']);
  assert.equal((await second.check(key)).source, 'cache');
  // Another organization's client shares the store, never the record.
  const other = new LicenseClient({ organizationId: '9c7e3b1a-2f4d-4a6b-8c5e-1d2f3a4b5c6d', baseUrl: EMULATOR, storage: 'memory' });
  assert.equal((await other.status(key)).state, 'empty');
});

test('a default IndexedDB store that cannot be opened (storage blocked) becomes the memory store, and says so', async () => {
  // The browser build (its inline entry: node's fetch reads no file: URL) in node with a
  // stand-in indexedDB whose open() fails, as in a sandboxed frame: the client still checks,
  // activates and caches, in memory, and status() says so.
  const key = await newKey({ limit_activations: 2 });
  const url = pathToFileURL(join(PACKAGE_DIR, 'inline.js')).href;
  const { stdout } = await run(process.execPath, [
    '--input-type=module',
    '-e',
    `globalThis.indexedDB = { open() { const r = {}; queueMicrotask(() => { r.error = new Error('denied'); r.onerror(); }); return r; } };
     const { LicenseClient } = await import(${JSON.stringify(url)});
     const c = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(EMULATOR)} });
     const a = await c.activate(${JSON.stringify(key)}, { label: 'x' });
     const v = await c.check(${JSON.stringify(key)});
     const s = await c.status(${JSON.stringify(key)});
     const chosen = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(EMULATOR)}, storage: 'indexedDB' });
     let named;
     try { await chosen.activate(${JSON.stringify(key)}, { label: 'y' }); named = 'resolved'; } catch (e) { named = e.code; }
     console.log(JSON.stringify({ activated: !!a.activation.id, source: v.source, storage: s.storage, state: s.state, named }));`,
  ]);
  // Chosen by name, the failure is the call's cache_error (no activation slot taken).
  assert.deepEqual(JSON.parse(stdout), { activated: true, source: 'cache', storage: 'memory', state: 'present', named: 'cache_error' });
});

test('cacheDir and appId: checked, and only for the file store', async () => {
  await inTempDir('polar-license-dir-', async (dir) => {
    const c = new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'file', cacheDir: dir });
    const s = await c.status('K-1');
    assert.deepEqual([s.storage, s.cacheDir], ['file', dir]);
    const bad = await rejection(new LicenseClient({ organizationId: ORG, appId: '.hidden' }).status('K-1'));
    assert.deepEqual([bad.code, bad.field], ['invalid_input', 'app_id']);
    assert.match(bad.detail, /^appId: must be 1-64 ASCII letters/);
    const mixed = await rejection(new LicenseClient({ organizationId: ORG, storage: 'memory', cacheDir: dir }).status('K-1'));
    assert.equal(mixed.field, 'options');
    assert.match(mixed.detail, /cacheDir is for the file store/);
    // The browser entry has no file store.
    const browser = await import(pathToFileURL(join(PACKAGE_DIR, 'browser.js')).href);
    const none = await rejection(new browser.LicenseClient({ organizationId: ORG, storage: 'file' }).status('K-1'));
    assert.deepEqual([none.code, none.field], ['invalid_input', 'storage']);
  });
});

test('node writes, the command line reads; the command line writes, node reads (one cache directory)', { skip: linux }, async () => {
  // One origin for both faces, which a relay can take down: a record answers only its server.
  const polar = await relay(EMULATOR);
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-files-'));
  try {
    const client = () => new LicenseClient({ organizationId: ORG, baseUrl: polar.url, cacheDir: dir });
    // node -> CLI
    const key = await newKey();
    assert.equal((await client().check(key)).source, 'online');
    const status = await native(dir, polar.url, key, 'status');
    assert.equal(status.cache.state, 'present', JSON.stringify(status));
    polar.mode = 'down';
    const offline = await native(dir, polar.url, key, 'check', '--revalidate-after', '0');
    assert.deepEqual([offline.outcome, offline.source], ['licensed', 'cache'], JSON.stringify(offline));
    polar.mode = 'up';

    // CLI -> node
    const other = await newKey();
    const first = await native(dir, polar.url, other, 'check');
    assert.deepEqual([first.outcome, first.source], ['licensed', 'online']);
    polar.mode = 'down';
    const cached = await new LicenseClient({ organizationId: ORG, baseUrl: polar.url, cacheDir: dir, gracePolicy: { revalidateAfter: 0 } }).check(other);
    assert.deepEqual([cached.source, cached.reason, cached.license.key], ['cache', 'offline', other]);
    polar.mode = 'up';

    // An activation made by node is the one the command line validates.
    const third = await newKey({ limit_activations: 2 });
    const { activation } = await client().activate(third, { label: 'node' });
    const checked = await native(dir, polar.url, third, 'check', '--revalidate-after', '0');
    assert.deepEqual([checked.outcome, checked.source, checked.activation_id], ['licensed', 'online', activation.id]);
  } finally {
    await polar.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("the default directory is the native one: appId 'polar-license' is the command line's own cache", { skip: linux }, async () => {
  const data = await mkdtemp(join(tmpdir(), 'polar-license-xdg-'));
  const polar = await relay(EMULATOR);
  try {
    const key = await newKey();
    const script = join(CONSUMER, 'default-dir.mjs');
    await writeFile(
      script,
      `import { LicenseClient } from 'polar-license';
const client = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(polar.url)}, appId: 'polar-license' });
await client.check(${JSON.stringify(key)});
console.log((await client.status(${JSON.stringify(key)})).cacheDir);
`,
    );
    const env = { ...process.env, XDG_DATA_HOME: data };
    const { stdout } = await run(process.execPath, [script], { cwd: CONSUMER, env });
    assert.equal(stdout.trim(), join(data, 'polar-license', 'polar-license'));
    // The command line without --cache-dir: its default directory under the same XDG_DATA_HOME.
    polar.mode = 'down';
    const argv = ['check', '--org', ORG, '--base-url', polar.url, '--key', key, '--no-machine-binding', '--revalidate-after', '0', '--json'];
    const answer = await run(CLI, argv, { env, timeout: 30_000 }).then(
      (r) => JSON.parse(r.stdout),
      (e) => JSON.parse(e.stdout),
    );
    assert.deepEqual([answer.outcome, answer.source, answer.reason], ['licensed', 'cache', 'offline'], JSON.stringify(answer));
  } finally {
    await polar.close();
    await rm(data, { recursive: true, force: true });
  }
});

// Issue #26: what a cold start loads. The node entry imports none of node's heavier modules, and
// a cached check loads none either: node:crypto (WebCrypto, about 2.5 ms to load: read only to
// make an install secret), node:child_process (the machine id on macOS and Windows alone) and,
// from node 20.16, node's streams (which an ESM import of node:fs brings in). A fresh process,
// as an app starts.
test('a cold start loads neither node:crypto, node:child_process nor streams, up to a cached check', async () => {
  await inTempDir('polar-license-cold-', async (dir) => {
    const key = await newKey();
    // The cache, filled online in this process.
    const filled = await new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, cacheDir: dir }).check(key);
    assert.equal(filled.source, 'online');
    const script = `
      const loaded = () => new Set(process.moduleLoadList);
      const at = loaded();
      const { LicenseClient } = await import('polar-license');
      const imported = [...loaded()].filter((m) => !at.has(m));
      const verdict = await new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(EMULATOR)}, cacheDir: ${JSON.stringify(dir)} }).check(${JSON.stringify(key)});
      const checked = [...loaded()].filter((m) => !at.has(m));
      await import('node:child_process');
      const probe = [...loaded()].filter((m) => !at.has(m));
      console.log(JSON.stringify({ source: verdict.source, imported, checked, probe }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: CONSUMER, timeout: 30_000 });
    const { source, imported, checked, probe } = JSON.parse(stdout);
    assert.equal(source, 'cache');
    // The list is node's own record of the built-in modules it loaded: importing one shows in it.
    assert.ok(probe.includes('NativeModule child_process'), probe.join(' '));
    assert.ok(checked.every((m) => probe.includes(m)) && imported.every((m) => checked.includes(m)));
    const heavies = ['NativeModule internal/crypto/webcrypto', 'NativeModule crypto', 'NativeModule child_process'];
    // Where node has no process.getBuiltinModule (before 20.16: node 18 here), node:fs is imported
    // on first use, and its ESM namespace brings the streams in.
    if (typeof process.getBuiltinModule === 'function') heavies.push('NativeModule internal/streams/readable');
    for (const heavy of heavies) {
      assert.ok(!checked.includes(heavy), `${heavy} was loaded: ${checked.join(' ')}`);
    }
  });
});

// What the file store waits for, as natively (src/native/store.rs): every write's temp file is
// fsynced before its rename, and the directory after it, so that a verdict survives a power cut;
// a cached answer's ledger alone (the engine's `revertible`, session::cached_ledger_may_revert)
// skips the directory's fsync. A preloaded script records the path of every fd node fsyncs
// (Linux: /proc/self/fd), in a fresh node.
test('a verdict is fsynced, file and directory; a cached answer skips only its ledger rename, or writes only its clock note', { skip: process.platform !== 'linux' && 'reads /proc/self/fd' }, async () => {
  await inTempDir('polar-license-fsync-', async (dir) => {
    const key = await newKey();
    const preload = join(dir, 'preload.cjs');
    await writeFile(
      preload,
      `const fs = require('node:fs');
const fsync = fs.fsync;
const renameSync = fs.renameSync;
globalThis.__fsyncs = [];
globalThis.__renames = [];
fs.fsync = (fd, cb) => { globalThis.__fsyncs.push(fs.readlinkSync('/proc/self/fd/' + fd)); return fsync(fd, cb); };
fs.renameSync = (from, to) => { globalThis.__renames.push(to); return renameSync(from, to); };
require('node:module').syncBuiltinESMExports();`,
    );
    const cache = join(dir, 'cache');
    const script = `
      const { LicenseClient } = await import('polar-license');
      const start = Date.now();
      let now = start;
      const client = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(EMULATOR)}, cacheDir: ${JSON.stringify(cache)}, clock: () => now });
      const sources = [];
      const phases = [];
      const renames = [];
      // The clock (seconds after the online verdict) of each check.
      for (const at of [0, 0, 30, 59, 60]) {
        now = start + at * 1000;
        sources.push((await client.check(${JSON.stringify(key)})).source);
        phases.push(globalThis.__fsyncs.splice(0));
        renames.push(globalThis.__renames.splice(0).length);
      }
      const files = (await import('node:fs')).readdirSync(${JSON.stringify(cache)}).filter((n) => !n.startsWith('.')).sort();
      console.log(JSON.stringify({ sources, phases, renames, files }));`;
    const { stdout } = await run(process.execPath, ['--require', preload, '--input-type=module', '-e', script], { cwd: CONSUMER, timeout: 30_000 });
    const { sources, phases, renames, files } = JSON.parse(stdout);
    assert.deepEqual(sources, ['online', 'cache', 'cache', 'cache', 'cache']);
    // Beside the record and its ledger, the clock note (the native names: the command line reads them).
    assert.deepEqual(files.filter((n) => n.endsWith('-clock.cache')).length, 1, files.join(' '));
    // Each fsynced path as what it is: the directory, or the temp file of a record, a ledger, the secret.
    const kind = (path) => {
      if (path === cache) return 'dir';
      const name = path.slice(cache.length + 1);
      assert.match(name, /^\..+\.\d+\.[^.]+\.tmp$/, `fsynced ${path}, not a temp file of ${cache}`);
      const target = name.slice(1).replace(/\.\d+\.[^.]+\.tmp$/, '');
      if (target === 'install-secret') return 'secret';
      return target.endsWith('-seq.cache') ? 'ledger' : 'record';
    };
    const [online, cached, noted, noted2, again] = phases.map((p) => p.map(kind));
    // The online verdict: the secret, the record and its ledger, each followed by the directory.
    assert.deepEqual([...online].filter((k) => k !== 'dir').sort(), ['ledger', 'record', 'secret'], online.join(' '));
    online.forEach((k, i) => k === 'dir' || assert.equal(online[i + 1], 'dir', `${k} without its directory fsync: ${online.join(' ')}`));
    // The cached answer: the record durable first, then its ledger, whose rename is not waited for
    // (then its clock note, written in place: no fsync, no rename).
    assert.deepEqual(cached, ['record', 'dir', 'ledger']);
    assert.equal(renames[1], 2);
    // Less than a minute past the record's clock (a tenth of the clock tolerance): the clock note
    // alone, no fsync and no rename; a minute past it, the record again.
    assert.deepEqual([noted, noted2, renames[2], renames[3]], [[], [], 0, 0]);
    assert.deepEqual(again, ['record', 'dir', 'ledger']);
  });
});

// The file store reads a file it does not remember (one written less than a second before it
// was read, as a clock note written in place is) with no `stat` before the read (issue #53
// item 4): another process's write is still read by the next `get`, in place and of the same
// size too (same inode), and by the next check of a client.
test('another process writes a file this store read or wrote a moment ago: the next get reads it', async () => {
  await inTempDir('polar-license-fresh-', async (dir) => {
    const url = pathToFileURL(join(PACKAGE_DIR, 'files.js')).href;
    const { fileStore } = await import(url);
    const store = fileStore(dir);
    const name = 'polar-license.v2-0123456789abcdef-clock';
    const path = join(dir, 'v2-0123456789abcdef-clock.cache');
    // Another process's store writes `text` in place, as a clock note is written.
    const other = (text) =>
      run(process.execPath, ['--input-type=module', '-e', `const { fileStore } = await import(${JSON.stringify(url)});
await fileStore(${JSON.stringify(dir)}).set(${JSON.stringify(name)}, ${JSON.stringify(text)}, 'volatile');`]);
    await store.set(name, 'note 0', 'volatile');
    assert.equal(await store.get(name), 'note 0');
    const { ino } = await stat(path);
    for (const text of ['note 1', 'note 2', 'note 3']) {
      await other(text);
      assert.equal((await stat(path)).ino, ino, 'written in place');
      assert.equal(await store.get(name), text);
      assert.equal(await store.get(name), text);
    }
    // Read, not written, by this store: the same.
    await other('note 4');
    assert.equal(await store.get(name), 'note 4');
    await other('note 5');
    assert.equal(await store.get(name), 'note 5');
    // Gone, then a directory: none, then no cache (never a stale text).
    await rm(path);
    assert.equal(await store.get(name), null);
    await mkdir(path);
    assert.equal(await store.get(name), '');
  });
});

test('two processes on one cache directory: a denial the other records is the next check of this one', async () => {
  await inTempDir('polar-license-fresh-', async (dir) => {
    const key = await newKey();
    const options = { organizationId: ORG, baseUrl: EMULATOR, cacheDir: join(dir, 'cache') };
    const a = new LicenseClient(options);
    assert.equal((await a.check(key)).source, 'online');
    for (let i = 0; i < 3; i++) assert.equal((await a.check(key)).source, 'cache');
    const revoked = await fetch(`${EMULATOR}/__emulator/keys/${key}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 'revoked' }) });
    assert.equal(revoked.status, 200);
    const script = `const { LicenseClient } = await import('polar-license');
const b = new LicenseClient({ ...${JSON.stringify(options)}, gracePolicy: { revalidateAfter: 0 } });
console.log(await b.check(${JSON.stringify(key)}).then((v) => v.source, (e) => e.code));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: CONSUMER, timeout: 30_000 });
    assert.equal(stdout.trim(), 'inactive');
    // Within its revalidation time this client would answer licensed from its cache without
    // asking: the denial is what the other process stored.
    const denied = await rejection(a.check(key));
    assert.equal(denied.code, 'inactive');
  });
});
