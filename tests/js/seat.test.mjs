// polar-license/seat (issue #67 item 5, npm face) through the installed tarball, against the
// native relay (`polar-license relay serve`, POLAR_CLI, a seat life of 30 s: the shortest it
// takes) in front of this file's own Polar (the package's emulator, in process):
//
// - two holders on a one-seat key: the second gets `seats_full` as a SeatError (a LicenseError:
//   the seats in use, the pool's size, when the soonest frees); the first's AbortSignal aborts,
//   its release reaches the relay and the second gets the seat;
// - the heartbeat is sent when the core's machine says (a third of the 30 s life: 10 s), driven
//   here by node:test's mock timers and mock Date (no real 30 s waited; the wasm's clock is
//   Date.now): nothing before it, one heartbeat at it, the relay's answer taken (the seat's new
//   end), the seat still the holder's; a relay out of reach at a heartbeat keeps the seat
//   while its lease runs, and the machine retries after 1 s;
// - issue #76 finding 2: the relay out of reach, the seat is `held` up to its lease's end and
//   `lost` from it (onLost once, `seat_lost`, its `endedAt`), retried within the lease, never
//   a heartbeat at or after the end; a 200 forged by a loopback server with no relay (a real
//   relay's answer replayed for another machine, or with its lease taken out) holds no seat
//   (`protocol_error`), nor a real relay's answer verified with another relay's keys; without
//   `relayKeys` no seat is held (`invalid_input`, field `relay_keys`) and nothing is sent;
// - a seat the relay freed (released behind the holder's back) is found gone at the next
//   heartbeat: onLost is called once with a `seat_gone` SeatError, and no heartbeat follows;
// - a signal aborted before the call sends nothing; one aborted while the seat is acquired gives
//   the seat just taken back; bad options are typed `invalid_input`.
// Under Node 18 the rows that tick the mock timers are skipped (its mock timers stop at a timer
// undici's fetch set meanwhile, and it has no mock Date); the rest run there too.
import { test, before, beforeEach, after, mock } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CLI, ORG, PACKAGE_DIR, pkg, rejection, relaySigningKey, seatKey, served } from './emulator.mjs';

const LIFE_S = 30;
const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const skip = CLI ? false : 'needs the native command line (POLAR_CLI)';
/** The heartbeat's rows tick node:test's mock timers. Node 18's stop at a timer undici's fetch
 * set while they were on (a later tick fires nothing): there only the rows without a tick run. */
const ticks = skip || (process.versions.node.split('.')[0] === '18' ? "Node 18's mock timers stop at undici's (node 20 runs this row)" : false);

const { LicenseClient, LicenseError } = await pkg();
const { Seats, SeatError, seats } = await import(pathToFileURL(join(PACKAGE_DIR, 'seat.js')).href);
const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);

// The real timers, kept before any test mocks them (the waits below are real ones).
const realSetTimeout = globalThis.setTimeout;
/** Now, unix ms, by the real clock (Date is mocked). */
const realNow = () => Math.floor(performance.timeOrigin + performance.now());
/** The relay's signing key (its public pair is the holders' `relayKeys`), and another relay's. */
const SIGNER = relaySigningKey('seat-relay');
const OTHER = relaySigningKey('other-relay');
const sleep = (ms) => new Promise((r) => realSetTimeout(r, ms));

let polar;
let scratch;
let relay;

/** `polar-license relay serve` in front of `polar`; resolves `{url, close}` once it serves. */
function relayServe(keyFile) {
  const args = ['--base-url', polar.url, 'relay', 'serve', '--signing-key', keyFile, '--port', '0', '--per-ip', '0', '--per-key', '0',
    '--store', join(scratch, 'seats.redb'), '--no-roster', '--reconcile-every', '0', '--seat-seconds', `${LIFE_S}`];
  return served(args, { home: scratch, env: { POLAR_ACCESS_TOKEN: TOKEN } });
}

before(async () => {
  if (skip) return;
  polar = await startEmulator();
  scratch = await mkdtemp(join(tmpdir(), 'polar-license-seat-'));
  const keyFile = join(scratch, 'relay.key');
  await writeFile(keyFile, `${SIGNER.text}\n`, { mode: 0o600 });
  relay = await relayServe(keyFile);
  // The hold's timers and clock: node:test's mock timers and Date, ticked by the tests (one
  // clock for the file: enabled again per test, a later test's ticks reached no timer of node
  // 20's). The wasm reads the time from Date.now, so the core's machine runs on this clock.
  try {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: realNow() });
  } catch {
    mock.timers.enable(['setTimeout']); // Node 18's form (no mock Date: its rows that tick are skipped)
  }
});
// Each row starts with the mock clock at the real time (the relay signs by the real one).
beforeEach(() => {
  if (!skip && typeof mock.timers.setTime === 'function') mock.timers.setTime(realNow());
});
after(async () => {
  mock.timers.reset();
  await relay?.close();
  await polar?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** A new key of `n` seats at this file's Polar. */
const newKey = (n) => seatKey(polar, n, 'SEAT');

/** The options of a holder of this file's relay (its keys trusted), with `more`. */
const opts = (more = {}) => ({ organizationId: ORG, relay: relay.url, relayKeys: SIGNER.pair, ...more });

/** A fetch that records each request (`{op, body, status, at}`: the route's last segment, the
 * body sent, its answer's status, when it was sent by the holder's clock). */
function recording(fail = () => false) {
  const sent = [];
  const fetchFn = async (url, init) => {
    const entry = { op: String(url).split('/').pop(), body: JSON.parse(init.body), status: null, at: Date.now() };
    sent.push(entry);
    if (fail(entry)) {
      entry.status = 0;
      throw new TypeError('fetch failed (the test cut it)');
    }
    const r = await fetch(url, init);
    entry.status = r.status;
    return r;
  };
  return { sent, fetch: fetchFn };
}

/** Waits (real time, 5 s at most) until `cond()` holds. */
async function until(cond, what) {
  for (let i = 0; i < 250; i++) {
    if (cond()) return;
    await sleep(20);
  }
  assert.fail(`not within 5 s: ${what}`);
}

test('two holders on a one-seat key: the second gets seats_full; the first aborts and the second gets the seat', { skip }, async () => {
  const key = newKey(1);
  const a = recording();
  const ctl = new AbortController();
  const first = await new Seats(opts({ fetch: a.fetch })).seat({ key, signal: ctl.signal });
  assert.match(first.id, /^[0-9a-f-]{36}$/);
  assert.equal(first.state, 'held');
  assert.ok(first.expiresAt > realNow() / 1000 + LIFE_S - 5 && first.expiresAt <= realNow() / 1000 + LIFE_S + 1, `expiresAt ${first.expiresAt}`);
  assert.deepEqual([first.info.inUse, first.info.size, first.info.ci], [1, 1, false]);

  const second = seats(opts());
  const full = await rejection(second.seat({ key }));
  assert.ok(full instanceof SeatError, String(full));
  assert.ok(full instanceof LicenseError, 'a SeatError is a LicenseError');
  assert.deepEqual([full.code, full.kind, full.inUse, full.size, full.status, full.gone], ['seats_full', 'denied', 1, 1, 409, false]);
  assert.ok(full.freesAt >= first.expiresAt - 1 && full.freesAt <= first.expiresAt + 1, `freesAt ${full.freesAt} against ${first.expiresAt}`);
  assert.ok(full.retryAfter > 0, `retryAfter ${full.retryAfter}`);
  assert.match(full.userMessage, /in use \(1 of 1\)/);
  assert.equal(JSON.stringify(full).includes(key), false, 'the key is in no error');

  // The abort alone releases: no release() is called here.
  ctl.abort();
  await until(() => a.sent.some((s) => s.op === 'release' && s.status !== null), 'the release sent on abort');
  const release = a.sent.find((s) => s.op === 'release');
  assert.deepEqual([release.status, release.body.seat], [200, first.id]);
  assert.equal(first.state, 'released');
  assert.deepEqual(await first.release(), { released: true }, 'release() after the abort: the same answer, nothing sent again');
  assert.equal(a.sent.filter((s) => s.op === 'release').length, 1);

  const now = await second.seat({ key });
  assert.notEqual(now.id, first.id);
  assert.deepEqual(await now.release(), { released: true });
});

test("the heartbeat runs at the core's interval (a third of the life, mock timers) and keeps the seat; a relay out of reach keeps it too", { skip: ticks }, async (t) => {
  const key = newKey(1);
  let cut = false;
  const rec = recording((s) => cut && s.op === 'heartbeat');
  const held = await seats(opts({ fetch: rec.fetch })).seat({ key });
  const beats = () => rec.sent.filter((s) => s.op === 'heartbeat');
  assert.equal(held.info.heartbeatMs, (LIFE_S * 1000) / 3, 'the core says: a third of the life');
  const end0 = held.expiresAt;
  // A real second, so that the relay's new end is a later second.
  await sleep(1_100);
  mock.timers.tick(held.info.heartbeatMs - 1);
  await sleep(50);
  assert.equal(beats().length, 0, 'no heartbeat before the interval');
  mock.timers.tick(1);
  await until(() => beats().length === 1 && beats()[0].status !== null, 'the first heartbeat answered');
  assert.deepEqual([beats()[0].status, beats()[0].body.seat], [200, held.id]);
  await until(() => held.expiresAt > end0, "the heartbeat's answer taken");
  assert.equal(held.state, 'held');
  const other = await rejection(seats(opts()).seat({ key }));
  assert.equal(other.code, 'seats_full', 'still the holder\'s after the heartbeat');

  // A heartbeat that cannot reach the relay: the seat is kept while its lease runs, and the
  // machine asks again after 1 s (not at the next interval).
  cut = true;
  mock.timers.tick(held.info.heartbeatMs);
  await until(() => beats().length === 2 && beats()[1].status === 0, 'the cut heartbeat');
  await sleep(50);
  assert.equal(held.state, 'held');
  cut = false;
  mock.timers.tick(999);
  await sleep(50);
  assert.equal(beats().length, 2, 'the retry not before 1 s');
  mock.timers.tick(1);
  await until(() => beats().length === 3 && beats()[2].status !== null, 'the retry after the cut one');
  assert.equal(beats()[2].status, 200);
  assert.deepEqual(await held.release(), { released: true });
  // Released: no heartbeat scheduled any more.
  mock.timers.tick(held.info.heartbeatMs * 3);
  await sleep(50);
  assert.equal(beats().length, 3);
});

test('a seat the relay freed is lost at the next heartbeat: onLost once, with seat_gone, and no heartbeat after', { skip: ticks }, async (t) => {
  const key = newKey(1);
  const rec = recording();
  const lost = [];
  const machine = 'npm-seat-test-lost';
  const held = await seats(opts({ fetch: rec.fetch })).seat({ key, machine, onLost: (e) => lost.push(e) });
  // The relay frees it behind the holder's back (the same machine and seat: a release).
  const freed = await fetch(`${relay.url}/v1/seats/release`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key, organization_id: ORG, machine, seat: held.id }),
  });
  assert.deepEqual([freed.status, (await freed.json()).released], [200, true]);
  mock.timers.tick(held.info.heartbeatMs);
  await until(() => rec.sent.some((s) => s.op === 'heartbeat' && s.status !== null), 'the heartbeat answered');
  await until(() => lost.length === 1, 'onLost called');
  const [e] = lost;
  assert.ok(e instanceof SeatError && e instanceof LicenseError);
  assert.deepEqual([e.code, e.kind, e.gone], ['seat_gone', 'denied', true]);
  assert.match(e.userMessage, /take a seat again/);
  assert.equal(held.state, 'gone');
  mock.timers.tick(held.info.heartbeatMs * 3);
  await sleep(50);
  assert.equal(rec.sent.filter((s) => s.op === 'heartbeat').length, 1, 'no heartbeat after the seat was lost');
  assert.equal(lost.length, 1);
  // Releasing a lost seat sends the core's release (the relay: not held) and loses nothing.
  assert.deepEqual(await held.release(), { released: false });
});

test('a signal aborted before the call sends nothing; bad options are invalid_input', { skip }, async () => {
  const key = newKey(1);
  const rec = recording();
  const s = seats(opts({ fetch: rec.fetch }));
  const ctl = new AbortController();
  ctl.abort(new Error('stopped before'));
  assert.equal((await rejection(s.seat({ key, signal: ctl.signal }))).message, 'stopped before');
  assert.equal(rec.sent.length, 0);
  for (const [options, field] of [
    [{ key: 42 }, 'key'],
    [{ key, signal: 'no' }, 'signal'],
    [{ key, onLost: 1 }, 'onLost'],
    [{ key: 'not a key\u0000' }, 'key'],
    [{ key, machine: '' }, 'machine'],
  ]) {
    const e = await rejection(s.seat(options));
    assert.ok(e instanceof SeatError, `${field}: ${e}`);
    assert.deepEqual([e.code, e.field], ['invalid_input', field], `${JSON.stringify(options)}: ${e.message}`);
  }
  assert.throws(() => seats({ relay: relay.url }), (e) => e.code === 'invalid_input' && e.field === 'organization_id');
  assert.equal(rec.sent.length, 0, 'nothing sent for bad input');
});

test('a signal aborted while the seat is acquired: the seat just taken goes back, and the call rejects with the reason', { skip }, async () => {
  const key = newKey(1);
  const ctl = new AbortController();
  const rec = recording();
  // The abort lands after the relay granted the seat, before seat() resolves.
  const fetchFn = async (url, init) => {
    const r = await rec.fetch(url, init);
    if (String(url).endsWith('/acquire')) ctl.abort(new Error('quit while acquiring'));
    return r;
  };
  const s = seats(opts({ fetch: fetchFn }));
  assert.equal((await rejection(s.seat({ key, signal: ctl.signal }))).message, 'quit while acquiring');
  assert.deepEqual(rec.sent.map((x) => [x.op, x.status]), [['acquire', 200], ['release', 200]]);
  const next = await seats(opts()).seat({ key });
  assert.equal(next.state, 'held', 'the seat was given back');
  await next.release();
});

test("without a key, the client's remembered key; none remembered is invalid_input with nothing sent", { skip }, async () => {
  const key = newKey(1);
  const client = new LicenseClient({ organizationId: ORG, baseUrl: relay.url, storage: 'memory' });
  const rec = recording();
  const s = seats(opts({ client, fetch: rec.fetch }));
  const none = await rejection(s.seat());
  assert.deepEqual([none.code, none.field], ['invalid_input', 'key'], none.message);
  assert.equal(rec.sent.length, 0);
  await client.rememberKey(key);
  const held = await s.seat();
  assert.equal(rec.sent[0].body.key, key, "the remembered key's seat");
  assert.deepEqual(await held.release(), { released: true });
  assert.throws(() => seats(opts({ client: {} })), (e) => e.code === 'invalid_input' && e.field === 'client');
});

test("the relay out of reach: held until the lease's end, lost at it (seat_lost, onLost once), retried within it, nothing sent at or after it", { skip: ticks }, async () => {
  const key = newKey(1);
  let cut = false;
  const rec = recording((s) => cut && s.op === 'heartbeat');
  const lost = [];
  const held = await seats(opts({ fetch: rec.fetch })).seat({ key, onLost: (e) => lost.push(e) });
  const beats = () => rec.sent.filter((s) => s.op === 'heartbeat');
  const end = held.info.endsAtMs;
  assert.ok(end > Date.now() + LIFE_S * 1000 - 5_000 && end <= Date.now() + LIFE_S * 1000, `endsAtMs ${end} at ${Date.now()}`);
  cut = true;
  // Up to a millisecond before the end, half a second at a time: every heartbeat fails.
  while (Date.now() < end - 501) {
    mock.timers.tick(500);
    await sleep(5);
  }
  mock.timers.tick(end - 1 - Date.now());
  await sleep(50);
  assert.equal(held.state, 'held', 'held while the lease runs');
  assert.equal(lost.length, 0);
  // The first at a third of the life, then retried 1 s, 2 s, 4 s, 8 s… apart within the lease.
  assert.ok(beats().length >= 4, `retried within the lease: ${beats().length} heartbeats`);
  assert.ok(beats().every((b) => b.status === 0));
  mock.timers.tick(1);
  await until(() => lost.length === 1, 'onLost at the end');
  assert.equal(held.state, 'lost', 'not held after its end');
  const [e] = lost;
  assert.ok(e instanceof SeatError && e instanceof LicenseError, String(e));
  assert.deepEqual([e.code, e.gone, e.endedAt], ['seat_lost', true, Math.floor(end / 1000)]);
  const sent = beats().length;
  mock.timers.tick(LIFE_S * 1000);
  await sleep(50);
  assert.equal(beats().length, sent, 'no heartbeat after the end');
  assert.ok(beats().every((b) => b.at < end), 'no heartbeat sent at or after the end');
  assert.equal(lost.length, 1, 'onLost once');
  cut = false;
  await held.release();
});

test('no relayKeys: no seat (invalid_input naming relay_keys) and nothing sent; relayKeys of the wrong shape are refused at once', { skip }, async () => {
  const key = newKey(1);
  const rec = recording();
  const e = await rejection(seats({ organizationId: ORG, relay: relay.url, fetch: rec.fetch }).seat({ key }));
  assert.ok(e instanceof SeatError, String(e));
  assert.deepEqual([e.code, e.field], ['invalid_input', 'relay_keys'], e.message);
  assert.equal(rec.sent.length, 0, 'nothing sent without relay keys');
  for (const relayKeys of [42, [SIGNER.pair, 7]]) {
    assert.throws(() => seats(opts({ relayKeys })), (x) => x.code === 'invalid_input' && x.field === 'relay_keys');
  }
  const bad = await rejection(seats(opts({ relayKeys: 'not-a-key', fetch: rec.fetch })).seat({ key }));
  assert.deepEqual([bad.code, rec.sent.length], ['invalid_input', 0], bad.message);
});

/** A loopback server with no relay behind it: answers every seat request 200 with the body
 * and the seat lease header (`polar-license-seat`) `answer(op)` gives. */
async function forger(answer) {
  const asked = [];
  const server = createServer((req, res) => {
    const op = req.url.split('/').pop();
    asked.push(op);
    req.resume();
    req.on('end', () => {
      const { body, lease } = answer(op);
      res.writeHead(200, { 'content-type': 'application/json', ...(lease ? { 'polar-license-seat': lease } : {}) });
      res.end(body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, asked, close: () => new Promise((r) => server.close(r)) };
}

test("a forged 200 holds no seat: a real answer replayed for another machine or with its lease taken out (no relay behind), or a real lease checked with another relay's keys", { skip }, async () => {
  const key = newKey(2);
  // A real answer of the relay's, for machine A: its body and its signed seat lease.
  let real;
  const capture = async (url, init) => {
    const r = await fetch(url, init);
    const body = await r.text();
    if (String(url).endsWith('/acquire')) real = { body, lease: r.headers.get('polar-license-seat') };
    return new Response(body, { status: r.status, headers: r.headers });
  };
  const a = await seats(opts({ fetch: capture })).seat({ key, machine: 'machine-a' });
  assert.ok(real?.lease?.startsWith('v4.public.'), 'the relay signs a seat lease into its answer');
  for (const [what, answer] of [
    ["machine A's answer replayed to machine B", real],
    ['the answer without its lease', { body: real.body }],
    ['a lease of garbage', { body: real.body, lease: 'v4.public.AAAA' }],
  ]) {
    const f = await forger(() => answer);
    try {
      const e = await rejection(seats(opts({ relay: f.url })).seat({ key, machine: 'machine-b' }));
      assert.ok(e instanceof SeatError, `${what}: ${e}`);
      assert.equal(e.code, 'protocol_error', `${what}: ${e.message}`);
      assert.match(e.detail, /lease/, what);
      assert.equal(f.asked[0], 'acquire', what);
    } finally {
      await f.close();
    }
  }
  // The relay itself, but trusted with another relay's keys: its lease is no lease here.
  const foreign = await rejection(seats(opts({ relayKeys: OTHER.pair })).seat({ key, machine: 'machine-c' }));
  assert.equal(foreign.code, 'protocol_error', foreign.message);
  // Given back: the relay counts only machine A's (a two-seat key: C's would fill it).
  const d = await seats(opts()).seat({ key, machine: 'machine-d' });
  assert.equal(d.state, 'held', 'the unverified seat was given back');
  await d.release();
  await a.release();
});
