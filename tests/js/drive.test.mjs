// The package's one drive loop (issue #77), through the installed tarball: every machine of the
// package's wasms (the engine's, the devices, seat and usage add-ons') speaks one step protocol
// and is driven by drive.js, which only does the IO a step asks.
//
// - the faces keep no loop of their own: polar-license/devices, seat and usage as shipped carry
//   drive.js's one `drive` and no timer, verifier or step loop of theirs, and license.js drives
//   every engine machine through it;
// - the usage add-on's wait (the core's before a send again) is slept by the loop: nothing is
//   sent again before the wasm's wait has passed (node:test's mock timers), then the report ends;
// - the loop answers a `verify` step with the host's Ed25519 and a `wait` it is stopped during
//   with `stopped`, and a step kind it does not do (another version's wasm) fails clearly with
//   `protocol_error` naming it, as does a storage step given to a loop without a store.
// No emulator: each row is a few milliseconds.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ORG, PACKAGE_DIR } from './emulator.mjs';

// The loop itself: license.js ships with it inside (and exports it for this test).
const { drive } = await import(pathToFileURL(join(PACKAGE_DIR, 'license.js')).href);
const shipped = (name) => readFile(join(PACKAGE_DIR, name), 'utf8');
const fail = (code, detail) => Object.assign(new Error(detail), { code });

test("the add-ons and the client keep no loop of their own: drive.js's is the only one", async () => {
  for (const module of ['devices.js', 'seat.js', 'usage.js']) {
    const text = await shipped(module);
    // The one loop inside (bundled: the module's own lines are after drive.js's).
    assert.equal(text.match(/async function drive\(/g)?.length, 1, `${module}: drive.js's loop, once`);
    // What is not drive.js's: the module's own lines, after esbuild's `// drive.js` part.
    const source = text.slice(text.lastIndexOf(`\n// ${module}\n`));
    assert.ok(source.length > 100 && text.indexOf('\n// drive.js\n') < text.length - source.length, `${module}: its own part found`);
    for (const [what, pattern] of [
      ['a timer', /setTimeout\(/],
      ['a step loop', /for \(;;\)|while \(/],
      ['a verifier of its own', /\.verified\(|unhex\(/],
      ['a request of its own', /AbortSignal\.timeout|\bsend\(/],
    ]) {
      assert.doesNotMatch(source, pattern, `${module}: ${what} outside drive.js`);
    }
  }
  // The client (license.js: drive.js bundled in, then its own part): every engine machine and
  // step through drive(); its storage's IO answers the storage wants drive() hands it, and it
  // sends, waits and verifies nothing itself.
  const whole = await shipped('license.js');
  assert.equal(whole.match(/async function drive\(/g)?.length, 1, "license.js: drive.js's loop, once");
  const license = whole.slice(whole.lastIndexOf('\n// license.js\n'));
  assert.match(license, /return drive\(first, give, \{/);
  assert.doesNotMatch(license, /want\.(send|verify|wait|note)\b|JSON\.parse\(engine\.call\(.give/, 'license.js does not drive: drive.js does');
});

test("the usage add-on's wait is slept by the loop: nothing is sent again before it", async (t) => {
  const { recordUsage } = await import(pathToFileURL(join(PACKAGE_DIR, 'usage.js')).href);
  try {
    mock.timers.enable({ apis: ['setTimeout'] });
  } catch {
    mock.timers.enable(['setTimeout']); // Node 18's form
  }
  t.after(() => mock.timers.reset());
  const sent = [];
  const fetchFn = async (url, init) => {
    sent.push(JSON.parse(init.body).id);
    // The first send finds the relay out of reach: the core asks for a wait, then sends again.
    if (sent.length === 1) throw new TypeError('fetch failed (the test cut it)');
    return new Response(JSON.stringify({ recorded: true, duplicate: false, balance: 7 }), { status: 200, headers: { 'content-type': 'application/json' } });
  };
  const report = recordUsage({ organizationId: ORG, relay: 'http://relay.test', key: 'POLAR-0123-4567-89AB-CDEF', meter: 'm', units: 1, fetch: fetchFn });
  // Real time (setImmediate is not mocked): until `cond` holds, 5 s at most; then a few turns more.
  const settle = async (cond = () => true) => {
    const end = performance.now() + 5000;
    while (!cond() && performance.now() < end) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  };
  // The wasm loaded, the report started, the first send made and failed.
  await settle(() => sent.length === 1);
  assert.equal(sent.length, 1, 'the first send');
  // The core's wait before the second send (polar_license::usage::wait_before: 200 ms): not a
  // send before it (a loop without the wasm's wait would send now), one at it.
  mock.timers.tick(199);
  await settle();
  assert.equal(sent.length, 1, 'nothing sent again within the wait');
  mock.timers.tick(1);
  await settle(() => sent.length === 2);
  assert.equal(sent.length, 2, 'sent again once the wait passed');
  assert.equal(sent[0], sent[1], 'the same id');
  const recorded = await report;
  assert.deepEqual([recorded.duplicate, recorded.balance, recorded.signed], [false, 7, false]);
});

test("the loop answers a verify with the host's Ed25519, a stopped wait with `stopped`, and fails clearly on a step it does not do", async () => {
  const given = [];
  const steps = ['{"verify":[[7,"aa","bb","cc"],[8,"aa","bb","dd"]]}', '{"wait":-1}', '{"done":{"ok":1}}'];
  const stop = new AbortController();
  const io = {
    timeout: 1000,
    verifier: async () => async (key, message, signature) => signature[0] === 0xcc,
    signal: stop.signal,
    fail,
  };
  const run = drive(steps[0], (g) => {
    given.push(g);
    if (g.verified) queueMicrotask(() => stop.abort());
    return steps[given.length];
  }, io);
  assert.deepEqual(await run, { done: { ok: 1 } });
  assert.deepEqual(given, [{ verified: [7, 1, 8, 0] }, { stopped: true }]);

  // Another version's wasm asking for what this loop does not do: protocol_error, named.
  const unknown = await drive('{"jump":1}', () => '{"done":1}', io).catch((e) => e);
  assert.equal(unknown.code, 'protocol_error');
  assert.match(unknown.message, /jump/);
  // A client's storage step, given to a loop without a store (an add-on's): the same.
  const storage = await drive('{"lock":"slot"}', () => '{"done":1}', io).catch((e) => e);
  assert.equal(storage.code, 'protocol_error');
  assert.match(storage.message, /lock/);
  // A wasm that keeps asking for signatures: not verified for ever.
  const again = await drive('{"verify":[[1,"aa","bb","cc"]]}', () => '{"verify":[[1,"aa","bb","cc"]]}', io).catch((e) => e);
  assert.equal(again.code, 'protocol_error');
});
