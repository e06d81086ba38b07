// The package under Bun and Deno (issue #14), from the installed tarball: the `bun` and `deno`
// npm packages pinned in scripts/npm run a script in the consumer project that checks a key
// against the emulator, twice; both take the node entry, so the default store is the file
// store and the second run (a restart) answers from the file the first one wrote. Deno without
// --allow-read cannot read the wasm: every call rejects with a load_error that names the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CONSUMER, EMULATOR, ORG, newKey } from './emulator.mjs';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tool = (name) => join(ROOT, 'scripts', 'npm', 'node_modules', '.bin', name);
const missing = (path) =>
  access(path).then(
    () => false,
    () => `no ${path}: run scripts/setup-wasm.sh`,
  );
const BUN = tool('bun');
const DENO = tool('deno');
const bun = await missing(BUN);
const deno = await missing(DENO);

/** The script both runtimes run: a check of `key`, its storage, and a validate of an unknown key. */
function script(key, appId) {
  return `import { LicenseClient, LicenseError } from 'polar-license';
const client = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(EMULATOR)}, appId: ${JSON.stringify(appId)} });
const out = {};
try {
  const verdict = await client.check(${JSON.stringify(key)});
  out.source = verdict.source;
  out.storage = (await client.status(${JSON.stringify(key)})).storage;
  try {
    await client.validate('NO-SUCH-KEY-${key}');
  } catch (e) {
    out.unknown = e instanceof LicenseError ? e.code : String(e);
  }
} catch (e) {
  out.error = e instanceof LicenseError ? { code: e.code, detail: e.detail } : String(e);
}
console.log(JSON.stringify(out));
`;
}

/**
 * Runs `fn(data, file)` with a fresh data directory (removed after) and `<runtime>-check.mjs`,
 * the check script of `script` for a new key, written in the consumer's directory.
 */
async function withCheckScript(runtime, fn) {
  const data = await mkdtemp(join(tmpdir(), `polar-license-${runtime}-`));
  try {
    const key = await newKey();
    const file = join(CONSUMER, `${runtime}-check.mjs`);
    await writeFile(file, script(key, `${runtime}-check`));
    await fn(data, file);
  } finally {
    await rm(data, { recursive: true, force: true });
  }
}

test('Bun runs the package: a check online, then from the file cache after a restart', { skip: bun }, async () => {
  await withCheckScript('bun', async (data, file) => {
    const env = { ...process.env, XDG_DATA_HOME: data };
    const once = async () => JSON.parse((await run(BUN, [file], { cwd: CONSUMER, env, timeout: 60_000 })).stdout);
    assert.deepEqual(await once(), { source: 'online', storage: 'file', unknown: 'not_found' });
    assert.deepEqual(await once(), { source: 'cache', storage: 'file', unknown: 'not_found' });
  });
});

test('Deno runs the package with its permissions; without --allow-read a load_error names the flag', { skip: deno }, async () => {
  await withCheckScript('deno', async (data, file) => {
    const env = { ...process.env, XDG_DATA_HOME: data, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' };
    const once = async (...allow) =>
      JSON.parse((await run(DENO, ['run', ...allow, file], { cwd: CONSUMER, env, timeout: 60_000 })).stdout);
    const all = ['--allow-read', '--allow-write', '--allow-net', '--allow-env', '--allow-sys'];
    assert.deepEqual(await once(...all), { source: 'online', storage: 'file', unknown: 'not_found' });
    assert.deepEqual(await once(...all), { source: 'cache', storage: 'file', unknown: 'not_found' });
    const denied = await once('--allow-net', '--allow-env', '--allow-sys');
    assert.equal(denied.error?.code, 'load_error', JSON.stringify(denied));
    assert.match(denied.error.detail, /--allow-read/, JSON.stringify(denied));
  });
});

/** The relay (polar-license/relay) served by the runtime's own server: a grant gets a lease. */
function relayScript(key, serve) {
  return `import { createRelay } from 'polar-license/relay';
import { generateKeyPairSync } from 'node:crypto';
const { d, x } = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
const secret = Buffer.concat([Buffer.from(d, 'base64url'), Buffer.from(x, 'base64url')]).toString('base64url');
const relay = createRelay({ accessToken: 'polar_oat_emulator_demo_0123456789abcdef', signingKey: 'rt=k4.secret.' + secret, baseUrl: ${JSON.stringify(EMULATOR)} });
${serve}
const answer = await fetch(url + '/v1/customer-portal/license-keys/activate', {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ key: ${JSON.stringify(key)}, organization_id: ${JSON.stringify(ORG)}, label: 'runtime' }),
});
const lease = answer.headers.get('polar-license-lease') ?? '';
console.log(JSON.stringify({ status: answer.status, lease: lease.startsWith('v4.public.') && lease.endsWith(Buffer.from(JSON.stringify({ kid: 'rt' })).toString('base64url')) }));
await server.stop?.();
await server.shutdown?.();
`;
}

test('Bun serves polar-license/relay (Bun.serve): an activation through it carries a lease', { skip: bun }, async () => {
  const file = join(CONSUMER, 'bun-relay.mjs');
  const serve = 'const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: relay.fetch });\nconst url = `http://127.0.0.1:${server.port}`;';
  await writeFile(file, relayScript(await newKey(), serve));
  const { stdout } = await run(BUN, [file], { cwd: CONSUMER, timeout: 60_000 });
  assert.deepEqual(JSON.parse(stdout), { status: 200, lease: true });
});

test('Deno serves polar-license/relay (Deno.serve): an activation through it carries a lease', { skip: deno }, async () => {
  const file = join(CONSUMER, 'deno-relay.mjs');
  const serve =
    'let port;\nconst server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: (a) => { port = a.port; } }, relay.fetch);\nawait new Promise((r) => setTimeout(r, 50));\nconst url = `http://127.0.0.1:${port}`;';
  await writeFile(file, relayScript(await newKey(), serve));
  const env = { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' };
  const { stdout } = await run(DENO, ['run', '--allow-read', '--allow-net', '--allow-env', file], { cwd: CONSUMER, env, timeout: 60_000 });
  assert.deepEqual(JSON.parse(stdout), { status: 200, lease: true });
});
