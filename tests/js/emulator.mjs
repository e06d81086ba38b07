// Helpers for the node:test suites: the emulator started by scripts/test-wasm.sh and the
// tarball installed into target/npm/consumer/.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

export const EMULATOR = process.env.POLAR_EMULATOR_URL;
export const DEAD = process.env.POLAR_DEAD_URL ?? 'http://127.0.0.1:9';
/** An emulator whose faults the tests set (only tests/js/features.test.mjs does). */
export const FAULT = process.env.POLAR_FAULT_URL;
/** The emulator of tests/js/trust.test.mjs alone (its faults and request counts are its own). */
export const TRUST = process.env.POLAR_TRUST_URL;
/** The native command line (`polar-license`), for records written by the native face. */
export const CLI = process.env.POLAR_CLI;
/** The `skip` of a test that needs the native command line: false when there is one. */
export const NEEDS_CLI = CLI ? false : 'needs the native command line (POLAR_CLI)';
/** The fault matrix's own emulator (tests/js/faults.test.mjs): nothing else sends to it, so
 * its request count is exact. */
export const MATRIX = process.env.POLAR_MATRIX_URL;
export const CONSUMER = process.env.CONSUMER;
export const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
export const README_KEY = 'DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A';
/** The demo seed's other keys (`polar-license emulator`'s banner) and its keys' benefit. */
export const REVOKED_KEY = 'DEMO-REVOKED-7A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D';
export const DISABLED_KEY = 'DEMO-DISABLED-1F2E3D4C-5B6A-4978-8695-A4B3C2D1E0F9';
export const EXPIRED_KEY = 'DEMO-EXPIRED-0A9B8C7D-6E5F-4D3C-B2A1-908172635445';
export const DEMO_BENEFIT = '5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d';

if (!EMULATOR || !CONSUMER) {
  throw new Error('POLAR_EMULATOR_URL and CONSUMER are not set: run scripts/test-wasm.sh');
}

export const PACKAGE_DIR = join(CONSUMER, 'node_modules', 'polar-license');

/** The error `promise` rejects with (the test fails when it resolves). */
export async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected a rejection');
}

/**
 * Runs `cmd args` in the consumer's directory until its stdout has `count` lines, or without a
 * count until a line starts with `serving` (20 s at most; exiting first rejects). Resolves
 * { child, lines, url }: the first `count` lines (all so far without a count), and the URL of
 * the first, `listening on URL`. Stop it with `stop(child)`.
 */
export function started(cmd, args, count) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: CONSUMER, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`${cmd} printed no banner: ${out} ${err}`));
    }, 20_000);
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      const lines = out.split('\n');
      const ready = count === undefined ? lines.some((l) => l.startsWith('serving')) : lines.length > count;
      if (ready) {
        clearTimeout(timer);
        const url = lines[0].replace('listening on ', '');
        resolve({ child, lines: count === undefined ? lines : lines.slice(0, count), url });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited ${code}: ${out} ${err}`));
    });
  });
}

/** Stops a process `started` started (SIGTERM), resolving once it has exited. */
export function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.on('exit', resolve);
    child.kill('SIGTERM');
  });
}

/** `served`: the native command line serving (tests/js/values-polar.mjs, which needs no
 * environment). */
export { served } from './values-polar.mjs';

/** A client (`LicenseClient`: the package's) of the emulator asking Polar at every check, on a
 * storage of its own, with the options `more`. */
export function askingClient(LicenseClient, more = {}) {
  return new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: mapStorage(), gracePolicy: { revalidateAfter: 0 }, ...more });
}

/** A new key of `seats` seats at an in-process Polar (`polar.addKey`), named `${prefix}-…`. */
export function seatKey(polar, seats, prefix) {
  const key = `${prefix}-${Math.random().toString(16).slice(2, 10).toUpperCase()}-4A5B6C`;
  polar.addKey({ key, limit_activations: seats });
  return key;
}

/** Forwards a request node's server took (its body read into `chunks`) to `base`, as a proxy
 * between the package and a server does: fetch's answer (a GET's or HEAD's body left out). */
export function forward(base, req, chunks) {
  const headers = { ...req.headers };
  delete headers.host;
  delete headers['content-length'];
  const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : Buffer.concat(chunks);
  return fetch(`${base}${req.url}`, { method: req.method, headers, body });
}

/**
 * `polar-license${subpath}` through the exports map, as the consumer resolves it: node's ESM
 * import gives the package's file `esm`, require its file `cjs`, whose exports are the
 * package's names. Resolves the CommonJS face.
 */
export async function resolvesThroughExports(subpath, esm, cjs) {
  const name = `polar-license${subpath}`;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--input-type=module', '-e', `console.log(import.meta.resolve('${name}'))`],
    { cwd: CONSUMER },
  );
  assert.ok(stdout.trim().endsWith(`/node_modules/polar-license/${esm}`), stdout);
  const require = createRequire(join(CONSUMER, 'package.json'));
  assert.ok(require.resolve(name).endsWith(`/node_modules/polar-license/${cjs}`));
  const face = require(name);
  assert.deepEqual(Object.keys(face).sort(), ['LicenseClient', 'LicenseError', 'REASONS', 'init', 'load']);
  return face;
}

/**
 * The package's entry `spec` (`polar-license/relay`…) imported through its exports map as an
 * app does: from a module `file` of the consumer that re-exports `names` (default: all) of it.
 */
export async function importAsApp(file, spec, names = '*') {
  const entry = join(CONSUMER, file);
  writeFileSync(entry, `export ${names} from '${spec}';\n`);
  return import(pathToFileURL(entry).href);
}

/**
 * A new relay signing key as `polar-license relay keygen` writes it,
 * `KID=k4.secret.<seed ‖ public>` (`text`), and the public pair clients take (`pair`).
 */
export function relaySigningKey(kid) {
  const { d, x } = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const secret = Buffer.concat([Buffer.from(d, 'base64url'), Buffer.from(x, 'base64url')]).toString('base64url');
  return { text: `${kid}=k4.secret.${secret}`, pair: `${kid}=k4.public.${x}` };
}

/**
 * The package's relay (`polar-license/relay`, imported as an app does) in front of the Polar at
 * `baseUrl`, on loopback in this process, with the emulator's demo token, a new signing key
 * named `kid` and the per-address limit out of the way; `options` are more of createRelay's.
 * Resolves `{ url, pair, close }` (`pair`: the key for a client's `relayKeys`).
 */
export async function nodeRelay(baseUrl, kid, options = {}) {
  const relayPkg = await importAsApp(`relay-import-${kid}.mjs`, 'polar-license/relay');
  const signing = relaySigningKey(kid);
  const relay = relayPkg.createRelay({
    accessToken: 'polar_oat_emulator_demo_0123456789abcdef',
    signingKey: signing.text,
    baseUrl,
    perIp: '1000/1000',
    ...options,
  });
  const server = createServer(relayPkg.createNodeListener(relay));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    // The relay's public key, `KID=k4.public.…`: a client's `relayKeys` (signed mode).
    pair: signing.pair,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The installed package, imported the way an app does (through its exports map). */
export async function pkg() {
  return import(pathToFileURL(join(CONSUMER, 'node_modules', 'polar-license', 'node.js')).href);
}

/** A fresh key on the emulator (so runs never share activations); `fields` are SeedKey fields. */
export async function newKey(fields = {}, base = EMULATOR) {
  const key = `JS-${randomBytes(12).toString('hex').toUpperCase()}`;
  const resp = await fetch(`${base}/__emulator/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key, limit_activations: 3, ...fields }),
  });
  if (resp.status !== 201) throw new Error(`cannot add a key: ${await resp.text()}`);
  return key;
}

/** Changes a key on the emulator at `base` (`PATCH /__emulator/keys/{key}`, a KeyUpdate). */
export async function patchKey(key, update, base = EMULATOR) {
  const resp = await fetch(`${base}/__emulator/keys/${key}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(update),
  });
  assert.equal(resp.status, 200, await resp.text());
}

/** Sets (or with `null` clears) the fault of the FAULT emulator (or of the one at `base`). */
export async function setFault(fault, base = FAULT) {
  if (!base) throw new Error('no emulator to set a fault on: run scripts/test-wasm.sh');
  const resp = await fetch(`${base}/__emulator/fault`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(fault),
  });
  if (resp.status !== 204) throw new Error(`cannot set the fault: ${await resp.text()}`);
}

/** How many license requests the emulator at `base` has received. */
export async function requestCount(base) {
  const resp = await fetch(`${base}/__emulator/requests`);
  if (resp.status !== 200) throw new Error(`cannot read the request count: ${await resp.text()}`);
  return (await resp.json()).count;
}

/**
 * A relay on loopback in front of the emulator at `target`, so that one origin can be made
 * unreachable: `mode` `up` forwards each request as it is and answers what the emulator
 * answered, `down` closes the connection without an answer (the server is unreachable: a
 * fetch fails), `hang` never answers (a timeout). `stop()` closes its port (connections are
 * refused) and `start()` opens the same port again; `close()` stops it for good.
 */
export async function relay(target) {
  const sockets = new Set();
  const r = { mode: 'up', url: '', requests: 0 };
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    r.requests += 1;
    if (r.mode === 'down') return void req.socket.destroy();
    if (r.mode === 'hang') return;
    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(([name]) => !['host', 'connection', 'content-length'].includes(name)),
    );
    const body = chunks.length ? Buffer.concat(chunks) : undefined;
    try {
      const resp = await fetch(`${target}${req.url}`, { method: req.method, headers, body, redirect: 'manual' });
      const answer = Buffer.from(await resp.arrayBuffer());
      const out = [...resp.headers].filter(([name]) => !['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(name));
      res.writeHead(resp.status, Object.fromEntries(out));
      res.end(answer);
    } catch {
      req.socket.destroy();
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  r.url = `http://127.0.0.1:${port}`;
  r.stop = () => {
    for (const socket of sockets) socket.destroy();
    return new Promise((ok) => server.close(ok));
  };
  r.start = () => new Promise((ok) => server.listen(port, '127.0.0.1', ok));
  r.close = () => (server.listening ? r.stop() : Promise.resolve());
  return r;
}

/** A storage adapter over a Map (`storage.map`), sync. */
export function mapStorage() {
  const map = new Map();
  return { map, get: (n) => map.get(n), set: (n, v) => void map.set(n, v), remove: (n) => void map.delete(n) };
}
