// Self-healing activations on npm (issue #80), through the installed package in node: a
// reinstall on the same machine (the same `machineId`, a fresh storage) at the activation limit
// ends licensed with the activation the machine already holds, found through the seller's
// relay (`polar-license/relay` in node, in front of the package's emulator) by the fingerprint
// its meta records, and takes none: the emulator's count of the key's activations is the same
// before and after. The core's heal machine runs in the engine, the JS only carrying its
// requests. Another machine at the limit is refused as before; so is the same machine without a
// relay to list through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ORG, PACKAGE_DIR, README_KEY, mapStorage, nodeRelay, pkg, rejection } from './emulator.mjs';

const { LicenseClient } = await pkg();
const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);

test('a reinstall at the limit adopts its own activation through the relay; no new one is taken', async (t) => {
  const polar = await startEmulator();
  t.after(() => polar.close());
  const relay = await nodeRelay(polar.url, 'heal-js');
  t.after(relay.close);
  const relayUrl = relay.url;
  const install = (machineId, withRelay = true) =>
    new LicenseClient({ organizationId: ORG, baseUrl: polar.url, storage: mapStorage(), machineId, ...(withRelay ? { relay: relayUrl } : {}) });

  // The demo key's three activations taken: this laptop's and two others'.
  const mine = (await install('machine-A').activate(README_KEY, { label: 'This laptop' })).activation.id;
  await install('machine-B').activate(README_KEY, { label: 'Desktop' });
  await install('machine-C').activate(README_KEY, { label: 'Old laptop' });
  assert.equal(polar.activations(README_KEY).length, 3);

  // Reinstalled (a fresh storage) on the same machine: its own activation, none taken.
  const again = install('machine-A');
  const healed = await again.activate(README_KEY, { label: 'This laptop' });
  assert.equal(healed.activation.id, mine);
  assert.equal(polar.activations(README_KEY).length, 3, 'the reinstall took no activation');
  // Remembered as an activation's: a check validates it, licensed.
  const checked = await again.check(README_KEY);
  assert.equal(checked.activation.id, mine);

  // Another machine at the limit is refused as before, nothing taken.
  const other = await rejection(install('machine-D').activate(README_KEY, { label: 'New laptop' }));
  assert.equal(other.code, 'activation_limit');
  // The same machine with no relay to list through: the limit stands.
  const unlisted = await rejection(install('machine-A', false).activate(README_KEY, { label: 'This laptop' }));
  assert.equal(unlisted.code, 'activation_limit');
  assert.equal(polar.activations(README_KEY).length, 3);
});

test('a relay URL that is not https (nor loopback) is refused as an option', async () => {
  const client = new LicenseClient({ organizationId: ORG, baseUrl: 'http://127.0.0.1:9', storage: mapStorage(), relay: 'http://relay.example.com' });
  const e = await rejection(client.activate(README_KEY));
  assert.equal(e.code, 'invalid_input');
  assert.equal(e.field, 'relay_url');
});
