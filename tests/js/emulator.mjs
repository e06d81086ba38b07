// Helpers for the node:test suites: the emulator started by scripts/test-wasm.sh and the
// tarball installed into target/npm/consumer/.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';

export const EMULATOR = process.env.POLAR_EMULATOR_URL;
export const DEAD = process.env.POLAR_DEAD_URL ?? 'http://127.0.0.1:9';
/** An emulator whose faults the tests set (only tests/js/features.test.mjs does). */
export const FAULT = process.env.POLAR_FAULT_URL;
/** The emulator of tests/js/trust.test.mjs alone (its faults and request counts are its own). */
export const TRUST = process.env.POLAR_TRUST_URL;
/** The native command line (`polar-license`), for records written by the native face. */
export const CLI = process.env.POLAR_CLI;
/** The fault matrix's own emulator (tests/js/faults.test.mjs): nothing else sends to it, so
 * its request count is exact. */
export const MATRIX = process.env.POLAR_MATRIX_URL;
export const CONSUMER = process.env.CONSUMER;
export const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
export const README_KEY = 'DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A';

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
