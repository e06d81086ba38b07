// Why a key stopped (issue #68) on the npm face: a denial through the seller's relay carries
// `stopped` ({kind, at, until}) beside its `code`, which stays Polar's. The relay's own work
// (the detail from Polar's webhooks, signed mode) is tested against the real relay in
// crates/relay/tests/lifecycle.rs; here the `fetch` option stands in for that relay in front
// of the suite's emulator (POLAR_EMULATOR_URL): Polar's denial passed on, the relay's
// `polar-license-stopped` header added, as the relay answers a paused key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CONSUMER, PACKAGE_DIR, askingClient, newKey, patchKey, pkg, rejection } from './emulator.mjs';

const { LicenseClient } = await pkg();
/** The other entries a node app takes the client from: inline (its wasm inside) and CommonJS. */
const ENTRIES = {
  inline: (await import(pathToFileURL(join(PACKAGE_DIR, 'inline-node.js')).href)).LicenseClient,
  commonjs: createRequire(join(CONSUMER, 'package.json'))('polar-license').LicenseClient,
};
/** Each detail and the sentence every face shows for it (the core's words, one table). */
const ROWS = JSON.parse(await readFile(new URL('../vectors/stopped-messages.json', import.meta.url), 'utf8')).rows;

/** A client of the emulator asking at every check, its answers given `stopped` as header. */
function client(stopped, Client = LicenseClient) {
  return askingClient(Client, {
    fetch: async (url, init) => {
      const resp = await fetch(url, init);
      if (stopped === undefined) return resp;
      const headers = new Headers(resp.headers);
      headers.set('polar-license-stopped', stopped);
      return new Response(await resp.arrayBuffer(), { status: resp.status, headers });
    },
  });
}

test('a denial carries why the key stopped, its code unchanged, and whether it may come back', async () => {
  const key = await newKey({});
  assert.equal((await client('paused; at=1780272000; until=1780444800').check(key)).source, 'online');
  await patchKey(key, { status: 'revoked' });
  const e = await rejection(client('paused; at=1780272000; until=1780444800').check(key));
  assert.equal(e.code, 'inactive');
  assert.deepEqual(e.stopped, { kind: 'paused', again: true, at: 1780272000, until: 1780444800 });
  assert.deepEqual(JSON.parse(JSON.stringify(e)).stopped, e.stopped, 'toJSON keeps it');
  const rotated = await rejection(client('rotated; at=5').check(key));
  assert.deepEqual(rotated.stopped, { kind: 'rotated', again: false, at: 5, until: null });
  const validated = await rejection(client('seat_revoked').validate(key));
  assert.deepEqual(validated.stopped, { kind: 'seat_revoked', again: true, at: null, until: null });
  // A refused activation carries it too (issue #68: the activate machine reads it as validate).
  const activated = await rejection(client('refunded; at=7').activate(key, { label: 'stopped-test' }));
  assert.equal(activated.code, 'inactive');
  assert.deepEqual(activated.stopped, { kind: 'refunded', again: false, at: 7, until: null });
  assert.equal('stopped' in (await rejection(client().activate(key, { label: 'stopped-test' }))), false);
  // No detail, or one that does not read: none.
  assert.equal('stopped' in (await rejection(client().check(key))), false);
  assert.equal('stopped' in (await rejection(client('gone fishing').check(key))), false);
});

test("a denial's userMessage says why the key stopped, each detail in the core's words", async () => {
  const key = await newKey({});
  await patchKey(key, { status: 'revoked' });
  const plain = await rejection(client().check(key));
  assert.equal(plain.userMessage, 'This license key is no longer active: see its state in the customer portal.');
  assert.ok(ROWS.length >= 6);
  for (const row of ROWS) {
    const e = await rejection(client(row.stopped).check(key));
    assert.equal(e.code, 'inactive', row.name);
    assert.equal(e.stopped.kind, row.stopped.split(';')[0], row.name);
    assert.equal(e.userMessage, row.user_message, row.name);
    assert.equal(JSON.parse(JSON.stringify(e)).userMessage, row.user_message, `${row.name}: toJSON`);
  }
});

test("every entry says it (the inline and CommonJS ones too), and without it the reason's sentence", async () => {
  const key = await newKey({});
  await patchKey(key, { status: 'revoked' });
  for (const [name, Client] of Object.entries(ENTRIES)) {
    for (const row of ROWS) {
      const e = await rejection(client(row.stopped, Client).check(key));
      assert.equal(e.userMessage, row.user_message, `${name}: ${row.name}`);
      assert.equal('stoppedOn' in e, false, `${name}: the dates' text is no field of the error`);
    }
    assert.equal((await rejection(client(undefined, Client).check(key))).userMessage, 'This license key is no longer active: see its state in the customer portal.', name);
  }
});

test("no check downloads the sentences: they are in polar_license_stopped.js, loaded for a denial that says why", async () => {
  // The engine's wasm and the default entry's JS, which every check downloads, hold none of the
  // words; the module written from the core at pack time holds each.
  const wasm = await readFile(join(PACKAGE_DIR, 'polar_license_bg.wasm'));
  const js = await readFile(join(PACKAGE_DIR, 'browser.js'), 'utf8');
  const words = await readFile(join(PACKAGE_DIR, 'polar_license_stopped.js'), 'utf8');
  for (const row of ROWS) {
    const part = row.user_message.split(/:| until | on /)[0];
    assert.equal(wasm.includes(Buffer.from(part)), false, `${row.name}: "${part}" in the wasm`);
    assert.equal(js.includes(part), false, `${row.name}: "${part}" in browser.js`);
    assert.ok(words.includes(part), `${row.name}: "${part}" not in polar_license_stopped.js`);
  }
});
