// Helpers for the node:test suites: the emulator started by scripts/test-wasm.sh and the
// tarball installed into target/npm/consumer/.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';

export const EMULATOR = process.env.POLAR_EMULATOR_URL;
export const DEAD = process.env.POLAR_DEAD_URL ?? 'http://127.0.0.1:9';
/** An emulator whose faults the tests set (only tests/js/features.test.mjs does). */
export const FAULT = process.env.POLAR_FAULT_URL;
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
