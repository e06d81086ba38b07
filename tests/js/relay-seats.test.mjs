// Issue #67's seat table on both hosts: the same rows against the native relay (`polar-license
// relay serve`, POLAR_CLI, its store in a redb file) and the npm package's relay under
// Cloudflare's Workers runtime (`workerd`, its store in a Durable Object on workerd's disk), both
// in front of this file's own Polar (the npm package's emulator), each with a seat life of 30 s
// (the shortest the relay takes: `--seat-seconds 30`, `seats: { seconds: 30 }`). The rows, over
// HTTP as a client sends them (`POST /v1/seats/acquire|heartbeat|release`):
//
// - two clients on a one-seat key: the second gets `seats_full` (409, with how many are in use
//   and when the soonest frees); the first releases, and the second's next try, at its
//   heartbeat, gets the seat;
// - a key's ordinary activations through the relay are taken from its seats (a two-activation
//   key with one activation has one seat), and an activation while seats held fill what was
//   sold is refused as Polar refuses one past the limit (403, its words); a deactivation gives
//   the seat back;
// - a relay restarted mid-hold (the process stopped, workerd stopped, each started again on the
//   same store) keeps every seat: a third client still gets `seats_full`, the holders'
//   heartbeat and release are answered as the seats', and the freed seat goes to the third;
// - a holder that vanishes (no heartbeat, no release: a `kill -9`) frees its seat after the
//   seat's life, and not before: another client asking every quarter second gets it between
//   the life and the life and one try after the acquisition; the vanished holder's late
//   heartbeat finds it gone. That row runs on a second pair of relays whose seats live
//   TEST_LIFE_S (3 s: the relays' test-only life, POLAR_LICENSE_RELAY_TEST_ONLY_SEAT_SECONDS and
//   `seats.testOnlySeconds`, under the 30 s a seller may set), the two hosts at once: a few
//   seconds of the run, not 30.
// - a flood of acquisitions on a full key (issue #62) meets the per-key limit: each refusal of
//   the full pool takes a token of the key's bucket (`--per-key 1/3`, `perKey: '1/3'` on a
//   host of its own each), so past the bucket the flood gets 429 `rate_limited` with the wait,
//   and the holder's heartbeat is still answered; the rule is the relay core's, both hosts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, relayUnderWorkerd, storeWorker } from './workerd.mjs';
import { CLI, ORG, PACKAGE_DIR, seatKey, served } from './emulator.mjs';

const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const VALIDATE = '/v1/customer-portal/license-keys/validate';
const SEATS = '/v1/seats';
const LIFE_S = 30;
/** The vanishing holder's row: the relays' test-only seat life. */
const TEST_LIFE_S = 3;
/** How often a client waiting for a seat asks again (a third of the life is a heartbeat; this
 * is finer, so that the row measures the relay's cull, not the client's pace). */
const POLL_MS = 250;
const skip = CLI ? false : 'needs the native command line (POLAR_CLI)';

const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);

let polar;
let scratch;
let keyFile;
let keyText;

/** `polar-license relay serve` on the store file `store` (`env`: more of its environment; its
 * per-key limit `perKey`, none by default); resolves `{url, close}` once it serves. */
function relayServe(store, env = {}, perKey = '0') {
  const args = ['--base-url', polar.url, 'relay', 'serve', '--signing-key', keyFile, '--port', '0', '--per-ip', '0', '--per-key', perKey,
    '--store', store, '--no-roster', '--reconcile-every', '0', '--seat-seconds', `${LIFE_S}`];
  return served(args, { home: scratch, env: { POLAR_ACCESS_TOKEN: TOKEN, ...env } });
}

const WORKER = storeWorker(`perIp: '0', perKey: '0', store: { roster: false, reconcileEvery: 0 }, seats: { seconds: ${LIFE_S} },`);
const SHORT_LIVED = storeWorker(`perIp: '0', perKey: '0', store: { roster: false, reconcileEvery: 0 }, seats: { testOnlySeconds: ${TEST_LIFE_S} },`);

/** The npm relay under workerd (`worker`), its Durable Object's storage in `dir`. */
async function workerd(dir, worker = WORKER) {
  return relayUnderWorkerd({
    port: await freePort(),
    worker,
    polarUrl: polar.url,
    bindings: { POLAR_ACCESS_TOKEN: TOKEN, RELAY_SIGNING_KEY: keyText },
    store: { dir, uniqueKey: 'polar-relay-seats-test' },
    probe: VALIDATE,
  });
}

/** A host: its name, the relay now (`relay.url`), and `restart()` (stopped, then started again
 * on the same store). */
async function host(name) {
  if (name === 'native') {
    const store = join(scratch, 'seats.redb');
    const h = { name, relay: await relayServe(store) };
    h.restart = async () => {
      await h.relay.close();
      h.relay = await relayServe(store);
    };
    return h;
  }
  const dir = await mkdtemp(join(scratch, 'do-'));
  const h = { name, relay: await workerd(dir) };
  h.restart = async () => {
    await h.relay.close();
    h.relay = await workerd(dir);
  };
  return h;
}

const hosts = [];
before(async () => {
  if (skip) return;
  polar = await startEmulator();
  scratch = await mkdtemp(join(tmpdir(), 'polar-license-seats-'));
  keyFile = join(scratch, 'relay.key');
  const keygen = spawn(CLI, ['relay', 'keygen', '--out', keyFile], { stdio: 'ignore', env: { PATH: process.env.PATH, HOME: scratch } });
  assert.equal(await new Promise((r) => keygen.once('exit', r)), 0, 'relay keygen');
  keyText = readFileSync(keyFile, 'utf8').trim();
  for (const name of ['native', 'workers']) hosts.push(await host(name));
});
after(async () => {
  for (const h of hosts) await h.relay.close();
  await polar?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** A new key of `seats` seats at this file's Polar. */
const newKey = (seats) => seatKey(polar, seats, 'SEATS');

/** `op` on `h`'s relay for `machine` (with its `seat`): `{status, body, lease, retryAfter}`. */
async function seat(h, op, key, machine, seatId) {
  const body = { key, organization_id: ORG, machine, ...(seatId ? { seat: seatId } : {}) };
  const r = await fetch(`${h.relay.url}${SEATS}/${op}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: r.status, json, text, lease: r.headers.get('polar-license-seat'), retryAfter: r.headers.get('retry-after') };
}

/** The seat `machine` got: the answer is a 200 with a seat lease, its id returned. */
function held(h, answer, what) {
  assert.equal(answer.status, 200, `${h.name}: ${what}: ${answer.text}`);
  assert.ok(answer.lease, `${h.name}: ${what}: a seat lease`);
  assert.match(answer.json?.seat ?? '', /^[0-9a-f-]{36}$/, `${h.name}: ${what}: the seat's id`);
  return answer.json.seat;
}

function full(h, answer, inUse, size, what) {
  assert.equal(answer.status, 409, `${h.name}: ${what}: ${answer.text}`);
  assert.equal(answer.json?.reason, 'seats_full', `${h.name}: ${what}`);
  assert.deepEqual([answer.json.in_use, answer.json.size], [inUse, size], `${h.name}: ${what}: ${answer.text}`);
  assert.ok(answer.json.frees_at, `${h.name}: ${what}: when the soonest frees`);
  assert.equal(answer.lease, null, `${h.name}: ${what}: no seat lease`);
}

test('two clients on a one-seat key: the second gets seats_full, then the seat at its next try once the first releases (both hosts)', { skip }, async () => {
  for (const h of hosts) {
    const key = newKey(1);
    const a = held(h, await seat(h, 'acquire', key, 'client-a'), 'the first acquisition');
    const refused = await seat(h, 'acquire', key, 'client-b');
    full(h, refused, 1, 1, 'the second client');
    assert.ok(Number(refused.retryAfter) > 0, `${h.name}: Retry-After ${refused.retryAfter}`);
    // Another machine cannot give the first one's seat back.
    assert.equal((await seat(h, 'release', key, 'client-b', a)).json?.released, false, `${h.name}: a release by another machine`);
    full(h, await seat(h, 'acquire', key, 'client-b'), 1, 1, 'the second client, after a release that was not the holder');
    const released = await seat(h, 'release', key, 'client-a', a);
    assert.deepEqual([released.status, released.json?.released], [200, true], `${h.name}: ${released.text}`);
    const start = performance.now();
    held(h, await seat(h, 'acquire', key, 'client-b'), "the second client's next try");
    assert.ok(performance.now() - start < (LIFE_S * 1000) / 3, `${h.name}: within one heartbeat`);
  }
});

test("a key's activations through the relay are taken from its seats, and an activation is refused while seats held fill what was sold (both hosts)", { skip }, async () => {
  const post = async (h, path, body) => {
    const r = await fetch(`${h.relay.url}/v1/customer-portal/license-keys/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, text, json: text ? JSON.parse(text) : null };
  };
  for (const h of hosts) {
    const key = newKey(2);
    const a = held(h, await seat(h, 'acquire', key, 'acts-a'), 'a');
    const laptop = await post(h, 'activate', { key, organization_id: ORG, label: 'laptop' });
    assert.equal(laptop.status, 200, `${h.name}: ${laptop.text}`);
    // 2 sold, 1 activated: 1 seat, held.
    full(h, await seat(h, 'acquire', key, 'acts-b'), 1, 1, 'b with one activation');
    const refused = await post(h, 'activate', { key, organization_id: ORG, label: 'desktop' });
    assert.deepEqual(
      [refused.status, refused.json?.detail, refused.json?.seats_in_use],
      [403, 'License key activation limit already reached', 1],
      `${h.name}: ${refused.text}`,
    );
    const gone = await post(h, 'deactivate', { key, organization_id: ORG, activation_id: laptop.json.id });
    assert.equal(gone.status, 204, `${h.name}: ${gone.text}`);
    held(h, await seat(h, 'acquire', key, 'acts-b'), 'b once the activation is gone');
    assert.equal((await seat(h, 'release', key, 'acts-a', a)).json?.released, true, h.name);
  }
});

test('a relay restarted mid-hold keeps every seat (both hosts)', { skip }, async () => {
  for (const h of hosts) {
    const key = newKey(2);
    const a = held(h, await seat(h, 'acquire', key, 'hold-a'), 'a');
    const b = held(h, await seat(h, 'acquire', key, 'hold-b'), 'b');
    full(h, await seat(h, 'acquire', key, 'hold-c'), 2, 2, 'c before the restart');
    await h.restart();
    full(h, await seat(h, 'acquire', key, 'hold-c'), 2, 2, 'c after the restart');
    held(h, await seat(h, 'heartbeat', key, 'hold-a', a), "a's heartbeat after the restart");
    const released = await seat(h, 'release', key, 'hold-b', b);
    assert.equal(released.json?.released, true, `${h.name}: b's release after the restart: ${released.text}`);
    held(h, await seat(h, 'acquire', key, 'hold-c'), 'c once b released');
  }
});

test(`a holder that vanishes frees its seat after the seat's life (${TEST_LIFE_S} s, test-only), not before (both hosts at once)`, { skip, timeout: 60_000 }, async () => {
  const short = [
    { name: 'native', relay: await relayServe(join(scratch, 'short.redb'), { POLAR_LICENSE_RELAY_TEST_ONLY_SEAT_SECONDS: `${TEST_LIFE_S}` }) },
    { name: 'workers', relay: await workerd(await mkdtemp(join(scratch, 'do-short-')), SHORT_LIVED) },
  ];
  hosts.push(...short);
  const LIFE_S = TEST_LIFE_S;
  await Promise.all(
    short.map(async (h) => {
      const key = newKey(1);
      const acquired = performance.now();
      const gone = held(h, await seat(h, 'acquire', key, 'vanishes'), 'the holder that vanishes');
      // The holder says nothing more. Another client asks every POLL_MS.
      let tries = 0;
      for (;;) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        tries += 1;
        const r = await seat(h, 'acquire', key, 'waiting');
        const after = performance.now() - acquired;
        if (r.status === 200) {
          held(h, r, 'the waiting client');
          assert.ok(after >= LIFE_S * 1000 - 1_000, `${h.name}: the seat freed ${Math.round(after)} ms after its acquisition, before its life`);
          assert.ok(after <= LIFE_S * 1000 + POLL_MS + 3_000, `${h.name}: the seat freed only ${Math.round(after)} ms after its acquisition (${tries} tries)`);
          break;
        }
        full(h, r, 1, 1, `the waiting client's try ${tries} at ${Math.round(after)} ms`);
        assert.ok(after < LIFE_S * 1000 + POLL_MS + 3_000, `${h.name}: still held ${Math.round(after)} ms after the holder vanished`);
      }
      const late = await seat(h, 'heartbeat', key, 'vanishes', gone);
      assert.deepEqual([late.status, late.json?.reason], [404, 'seat_gone'], `${h.name}: the vanished holder's late heartbeat: ${late.text}`);
    }),
  );
});

test('a flood of acquisitions on a full key meets the per-key limit: 429 with the wait, the holder still answered (both hosts)', { skip }, async () => {
  const flooded = [
    { name: 'native', relay: await relayServe(join(scratch, 'flood.redb'), {}, '1/3') },
    {
      name: 'workers',
      relay: await workerd(
        await mkdtemp(join(scratch, 'do-flood-')),
        storeWorker(`perIp: '0', perKey: '1/3', store: { roster: false, reconcileEvery: 0 }, seats: { seconds: ${LIFE_S} },`),
      ),
    },
  ];
  try {
    for (const h of flooded) {
      const key = newKey(1);
      const mine = held(h, await seat(h, 'acquire', key, 'holder'), 'the holder');
      const answers = [];
      for (let i = 0; i < 20; i += 1) answers.push(await seat(h, 'acquire', key, `flood-${i}`));
      const statuses = answers.map((a) => a.status);
      // The verdict asked of Polar took one token of three: two refusals from the pool, then 429.
      assert.deepEqual(statuses.slice(0, 2), [409, 409], `${h.name}: ${statuses}`);
      const limited = answers.slice(2).filter((a) => a.status === 429);
      assert.ok(limited.length >= 15, `${h.name}: the flood past the bucket limited: ${statuses}`);
      for (const a of limited) {
        assert.equal(a.json?.reason, 'rate_limited', `${h.name}: ${a.text}`);
        assert.ok(Number(a.retryAfter) >= 1, `${h.name}: the wait: ${a.retryAfter}`);
      }
      held(h, await seat(h, 'heartbeat', key, 'holder', mine), "the holder's heartbeat during the flood");
    }
  } finally {
    for (const h of flooded) await h.relay.close();
  }
});
