// Issue #38: signed mode is loaded by those who use it. The package's engine verifies no
// signature itself: in signed mode it asks the host (node:crypto's Ed25519 in the node entries,
// else WebCrypto's, else the package's wasm add-on, polar_license_ed25519_bg.wasm, loaded on the
// first lease), and decides everything else itself.
//
// Each scenario runs an app in a process of its own, from the installed tarball, with module
// hooks that record every module it imports and counters on node:crypto's `verify` and
// WebCrypto's `importKey`: an app without relay keys must load and call no verifier at all.
// A stand-in relay (tests/js/lease-relay.mjs) in front of the emulator adds leases, honest or
// forged. A host whose verifier lies ("valid" for any signature) shows what the core still
// refuses on its own: no lease, a lease for another key, organization or activation, one that
// is not a grant, an expired one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CONSUMER, EMULATOR, ORG, newKey } from './emulator.mjs';
import { DAY, claims, honest, signLease, signingKey, standIn } from './lease-relay.mjs';

const run = promisify(execFile);
const SIGNER = signingKey('relay-2026');
/** A key nobody trusts, signing under the trusted key's kid: a forger's. */
const FORGER = signingKey('relay-2026');
const MACHINE = 'machine-A';

/** Module hooks: every URL the app's process resolves, one per line, to $LOADS. */
const HOOKS = `
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(process.env.LOADS, resolved.url + '\\n');
  return resolved;
}
`;
const REGISTER = `
import { register } from 'node:module';
register(${JSON.stringify(pathToFileURL(join(CONSUMER, 'verifier-hooks.mjs')).href)});
`;

/**
 * The app: activates KEY through RELAY, then checks it 2 hours later with Polar unreachable
 * (the cache, within the lease in signed mode). $HOST: `ok` (the runtime's verifiers),
 * `none` (node:crypto's verify and WebCrypto's Ed25519 taken away: the wasm add-on), `lie`
 * (node:crypto's verify answers true for every message but RFC 8032's empty one, so that it
 * passes the package's probe). Prints what it got and what was called.
 */
const APP = `
import { createRequire, syncBuiltinESMExports } from 'node:module';
const require = createRequire(import.meta.url);
const crypto = require('node:crypto');
const calls = { nodeVerify: 0, importKey: 0 };
const realVerify = crypto.verify;
crypto.verify = (...a) => {
  calls.nodeVerify += 1;
  if (process.env.HOST === 'none') throw new Error('no Ed25519 in this host');
  if (process.env.HOST === 'lie' && a[1].length > 0) return true;
  return realVerify(...a);
};
for (const subtle of new Set([globalThis.crypto?.subtle, crypto.webcrypto?.subtle].filter(Boolean))) {
  const realImport = subtle.importKey.bind(subtle);
  subtle.importKey = async (...a) => {
    calls.importKey += 1;
    if (process.env.HOST === 'none' && a[2]?.name === 'Ed25519') throw new DOMException('Unrecognized name.', 'NotSupportedError');
    return realImport(...a);
  };
}
syncBuiltinESMExports();
const { LicenseClient } = await import('polar-license');
let offline = false;
let t = Date.now();
const app = new LicenseClient({
  organizationId: process.env.ORG,
  baseUrl: process.env.RELAY,
  machineId: ${JSON.stringify(MACHINE)},
  storage: 'memory',
  clock: () => t,
  fetch: (url, init) => (offline ? Promise.reject(new TypeError('fetch failed')) : fetch(url, init)),
  ...(process.env.RELAY_KEYS ? { relayKeys: process.env.RELAY_KEYS } : {}),
});
const settle = (p) => p.then((r) => ({ ok: true, source: r.source ?? null, lease: r.lease ?? null }), (e) => ({ ok: false, code: e.code, detail: e.detail }));
const out = { activate: await settle(app.activate(process.env.KEY, { label: 'laptop' })) };
offline = true;
t += 2 * 3600 * 1000;
out.check = await settle(app.check(process.env.KEY));
out.calls = calls;
console.log(JSON.stringify(out));
`;

await writeFile(join(CONSUMER, 'verifier-hooks.mjs'), HOOKS);
await writeFile(join(CONSUMER, 'verifier-register.mjs'), REGISTER);
await writeFile(join(CONSUMER, 'verifier-app.mjs'), APP);

/**
 * Runs the app against a fresh key behind a stand-in relay whose leases `lease(facts, now)`
 * makes; `relayKeys` (none: an unsigned app), `host` as APP says. Resolves the app's output
 * and `addon`: whether the wasm add-on's glue was imported.
 */
async function app({ lease = honest(SIGNER), relayKeys = SIGNER.pair, host = 'ok' } = {}) {
  const w = { requests: 0, down: false, now: () => Math.floor(Date.now() / 1000), lease };
  await standIn(w, EMULATOR);
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-verifier-'));
  try {
    const loads = join(dir, 'loads.txt');
    await writeFile(loads, '');
    const env = { ...process.env, LOADS: loads, ORG, RELAY: w.url, KEY: await newKey(), HOST: host, RELAY_KEYS: relayKeys ?? '' };
    const { stdout } = await run(process.execPath, ['--no-warnings', '--import', './verifier-register.mjs', 'verifier-app.mjs'], {
      cwd: CONSUMER,
      env,
      timeout: 60_000,
    });
    const imported = (await readFile(loads, 'utf8')).split('\n');
    assert.ok(imported.some((u) => u.endsWith('/polar-license/node.js')), 'the hooks saw the package load');
    return { ...JSON.parse(stdout), addon: imported.some((u) => u.includes('polar_license_ed25519')) };
  } finally {
    await w.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('an app without relay keys loads and calls no signature verifier', async () => {
  const out = await app({ relayKeys: null });
  assert.equal(out.activate.ok, true, JSON.stringify(out.activate));
  assert.equal(out.activate.lease, null);
  assert.equal(out.check.source, 'cache', JSON.stringify(out.check));
  assert.equal(out.addon, false, 'the wasm add-on was imported');
  assert.deepEqual(out.calls, { nodeVerify: 0, importKey: 0 });
});

test("signed mode in node verifies with node:crypto's Ed25519 and loads no wasm verifier", async () => {
  const out = await app();
  assert.equal(out.activate.ok, true, JSON.stringify(out.activate));
  assert.equal(out.activate.lease.kid, 'relay-2026');
  assert.equal(out.check.ok, true, JSON.stringify(out.check));
  assert.equal(out.check.source, 'cache');
  assert.deepEqual(out.check.lease, out.activate.lease);
  assert.ok(out.calls.nodeVerify >= 3, `RFC 8032's probe (2) and the lease: ${out.calls.nodeVerify}`);
  assert.equal(out.addon, false);
  // A forger's lease: no verdict online, nothing offline.
  const forged = await app({ lease: honest(FORGER) });
  assert.equal(forged.activate.code, 'protocol_error', JSON.stringify(forged.activate));
  assert.match(forged.activate.detail, /\(signature\)/);
  assert.equal(forged.check.ok, false);
});

test('a host without Ed25519 loads the wasm add-on on the first lease, which decides the same', async () => {
  const out = await app({ host: 'none' });
  assert.equal(out.addon, true, 'the wasm add-on was not imported');
  assert.equal(out.activate.ok, true, JSON.stringify(out.activate));
  assert.equal(out.activate.lease.kid, 'relay-2026');
  assert.equal(out.check.source, 'cache', JSON.stringify(out.check));
  assert.deepEqual(out.check.lease, out.activate.lease);
  const forged = await app({ host: 'none', lease: honest(FORGER) });
  assert.equal(forged.addon, true);
  assert.equal(forged.activate.code, 'protocol_error', JSON.stringify(forged.activate));
  assert.match(forged.activate.detail, /\(signature\)/);
  assert.equal(forged.check.ok, false);
});

/** A forger's lease for the grant `f` with `edit` applied to its claims (and `machine`). */
const forgedWith =
  (edit = (c) => c, machine = undefined) =>
  (f, now) =>
    signLease(FORGER, edit(claims(f, now, 3)), machine === undefined ? f.machine : machine);

test('a host whose verifier lies cannot make the core grant what it checks itself', async () => {
  // What a lying host can do (it owns the process): a forged lease with the right claims.
  const right = await app({ host: 'lie', lease: forgedWith() });
  assert.equal(right.activate.ok, true, JSON.stringify(right.activate));
  assert.equal(right.check.source, 'cache');
  // What it cannot: no lease at all, or one for anything else than this check.
  const cases = {
    'no lease': () => undefined,
    'another key': forgedWith((c) => ({ ...c, key: 'ANOTHER-KEY' })),
    'another organization': forgedWith((c) => ({ ...c, organization_id: '11111111-1111-4111-8111-111111111111' })),
    'another activation': forgedWith((c) => ({ ...c, activation_id: '22222222-2222-4222-8222-222222222222' })),
    'not granted': forgedWith((c) => ({ ...c, status: 'revoked' })),
    'expired an hour ago': forgedWith((c) => ({ ...c, issued_at: c.issued_at - 2 * DAY, not_before: c.not_before - 2 * DAY, expires_at: c.issued_at - 3600 })),
    'past the license': forgedWith((c) => ({ ...c, license_expires_at: c.issued_at + 60 })),
  };
  for (const [name, lease] of Object.entries(cases)) {
    const out = await app({ host: 'lie', lease });
    assert.equal(out.activate.ok, false, `${name}: ${JSON.stringify(out.activate)}`);
    assert.equal(out.activate.code, 'protocol_error', name);
    assert.equal(out.check.ok, false, `${name}: ${JSON.stringify(out.check)}`);
  }
  // Bound to another machine: the lying host passes the signature, the claims match, and the
  // machine is only in the signed bytes; so this is what a lying host can do too.
  const elsewhere = await app({ host: 'lie', lease: forgedWith(undefined, 'machine-B') });
  assert.equal(elsewhere.activate.ok, true, JSON.stringify(elsewhere.activate));
});

// ---- Bun and Deno ------------------------------------------------------------------------------

const tool = (name) => join(CONSUMER, '..', '..', '..', 'scripts', 'npm', 'node_modules', '.bin', name);
const missing = async (path) => {
  try {
    await run(path, ['--version'], { timeout: 30_000 });
    return false;
  } catch {
    return `no ${path}: run scripts/setup-wasm.sh`;
  }
};

/** Activates through the relay, then checks offline 2 hours later: the lease answers. */
const RUNTIME_APP = `
import { LicenseClient } from 'polar-license';
let offline = false;
let t = Date.now();
const app = new LicenseClient({
  organizationId: process.env.ORG, baseUrl: process.env.RELAY, machineId: 'runtime-machine', storage: 'memory',
  relayKeys: process.env.RELAY_KEYS, clock: () => t,
  fetch: (url, init) => (offline ? Promise.reject(new TypeError('fetch failed')) : fetch(url, init)),
});
const out = {};
try {
  out.activated = (await app.activate(process.env.KEY, { label: 'runtime' })).lease?.kid ?? null;
  offline = true;
  t += 2 * 3600 * 1000;
  const c = await app.check(process.env.KEY);
  out.check = [c.source, c.lease?.kid ?? null];
} catch (e) {
  out.error = [e.code, e.detail];
}
console.log(JSON.stringify(out));
`;

for (const [name, args] of [
  ['bun', []],
  ['deno', ['run', '--allow-read', '--allow-net', '--allow-env', '--allow-sys']],
]) {
  const path = tool(name);
  test(`${name} verifies a relay's lease (node:crypto or WebCrypto Ed25519) and refuses a forged one`, { skip: await missing(path) }, async () => {
    const file = join(CONSUMER, `verifier-${name}.mjs`);
    await writeFile(file, RUNTIME_APP);
    const w = { requests: 0, down: false, now: () => Math.floor(Date.now() / 1000), lease: honest(SIGNER) };
    await standIn(w, EMULATOR);
    try {
      const env = { ...process.env, ORG, RELAY: w.url, RELAY_KEYS: SIGNER.pair, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' };
      const once = async () => JSON.parse((await run(path, [...args, file], { cwd: CONSUMER, env: { ...env, KEY: await newKey() }, timeout: 60_000 })).stdout);
      assert.deepEqual(await once(), { activated: 'relay-2026', check: ['cache', 'relay-2026'] });
      w.lease = honest(FORGER);
      const forged = await once();
      assert.equal(forged.error?.[0], 'protocol_error', JSON.stringify(forged));
      assert.match(forged.error[1], /\(signature\)/);
    } finally {
      await w.close();
    }
  });
}
