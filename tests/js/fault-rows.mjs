// The fault matrix's rows and what each must do (issue #6 item 3), for every JS host the
// installed package runs in: node (tests/js/faults.test.mjs, also under Node 18) and the three
// browser engines (tests/browser/faults.test.mjs). The same thirteen rows as
// tests/fault_matrix.rs (Rust) and bindings/c/tests/test_faults.c (C). For each server fault,
// against the matrix's own emulator (so request counts are exact):
//
//   1. an online validate() rejects with the reason code of docs/interfaces.md §1, with exactly one request;
//   2. with no cache, check() does not grant (same code, one request);
//   3. with a valid cached verdict, check() is licensed from the cache for every row, with one
//      request: no fault here is a verdict of Polar's (offline, rate_limited, server_error and
//      protocol_error alike, docs/interfaces.md §4), and the result's `reason` says what happened;
//   4. the cached verdict survives: status() still holds the same good verdict, and once the
//      fault is cleared a check is licensed again;
//   5. after a 429 the block holds: the next checks send nothing until it ends;
//   6. the client lets go of every faulted connection: no fault body (slow, 50 MB) is still
//      being written once the calls returned (an abandoned but open connection keeps the
//      server streaming into it, and holds one of a browser's few connections per host).
//
// Where the client runs is a host (`host`): it makes clients (`client(name, options)`: a
// LicenseClient over a named Map store, whose clock reads what `setNow` set; `reset()` empties
// the stores before a row) and says whether it is a page (`page`: Polar exposes no `Retry-After` to a page, so a page's
// block after a 429 is Polar's default, 60 s). A client's calls resolve settled:
// `{ code, value?, error? }`, `code` being `licensed/<source>` or the rejection's code.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { MATRIX, ORG, newKey, relay, requestCount, setFault } from './emulator.mjs';

const WEEK = 7 * 86400;
const RETRY_AFTER = 600; // the rate_limited_retry_after row's
const DEFAULT_BLOCK = 60; // Polar's block when retry-after is missing (or unreadable)
// The hang and slow-body rows time out on purpose (each faulted call costs this much); every
// other row keeps the default.
const SHORT_TIMEOUT = 1;
const TIMEOUT = 10;

const status = (code, body) => ({ kind: 'status', status: code, body });
export const ROWS = [
  ['connection_refused', null, 'offline'],
  ['hang_timeout', { kind: 'hang' }, 'offline'],
  ['slow_body', { kind: 'slow_body', ms_per_byte: 200 }, 'offline'],
  ['status_500', status(500, 'Internal Server Error'), 'server_error'],
  ['status_502', status(502, '<html><body><h1>502 Bad Gateway</h1></body></html>'), 'server_error'],
  ['status_503', status(503, '{"detail":"Service Unavailable"}'), 'server_error'],
  ['rate_limited', { kind: 'rate_limited', retry_after: null }, 'rate_limited'],
  ['rate_limited_retry_after', { kind: 'rate_limited', retry_after: RETRY_AFTER }, 'rate_limited'],
  ['malformed_json', { kind: 'malformed' }, 'protocol_error'],
  ['truncated_body', { kind: 'truncated' }, 'protocol_error'],
  ['huge_body', { kind: 'huge', bytes: 52428800 }, 'protocol_error'],
  ['unexpected_status', status(418, '{"detail":"I\'m a teapot"}'), 'protocol_error'],
  [
    'status_401',
    status(
      401,
      '{"error":"invalid_token","error_description":"The access token provided is expired, revoked, malformed, or invalid for other reasons."}',
    ),
    'protocol_error',
  ],
];

/**
 * Runs `row` in `host` and adds its record (what the table shows) to `found`, `result` set to
 * `pass` only when every check of the row held.
 */
export async function runRecorded(row, found, host) {
  const f = {
    id: row[0],
    expected: row[2],
    got: '',
    noCache: '',
    cached: '',
    cacheKept: false,
    requests: '',
    expectedRequests: '',
    result: 'FAIL',
  };
  found.push(f);
  // A record answers only a client of the server it came from: the row whose server is down
  // talks to a relay in front of the emulator, and closes the relay's port.
  const gate = row[1] === null ? await relay(MATRIX) : null;
  try {
    await runRow(row, f, gate, host);
  } finally {
    await gate?.close();
  }
  f.result = 'pass';
}

/** Writes the rows to target/fault-matrix/NAME.tsv, for scripts/fault-table.sh. */
export async function writeRows(found, name) {
  const header = 'face\tfault\texpected\tgot\tno_cache\tcached\tcache_kept\trequests\texpected_requests\tresult';
  const lines = found.map((f) =>
    ['js', f.id, f.expected, f.got, f.noCache, f.cached, f.cacheKept ? 'yes' : 'no', f.requests, f.expectedRequests, f.result].join('\t'),
  );
  const dir = fileURLToPath(new URL('../../target/fault-matrix/', import.meta.url));
  await mkdir(dir, { recursive: true });
  await writeFile(`${dir}${name}.tsv`, [header, ...lines, ''].join('\n'));
}

/** Fault bodies the emulator is still writing. */
async function openStreams() {
  const resp = await fetch(`${MATRIX}/__emulator/streams`);
  return (await resp.json()).open;
}

/**
 * Waits (20 ms steps, at most 10 s) until no fault body is being written; resolves the count
 * left. A bounded wait for an event, not a timing assertion: a connection the client kept open
 * would keep the emulator streaming until its own 30 s write stall limit.
 */
async function streamsClosed() {
  let open = await openStreams();
  for (let i = 0; i < 500 && open !== 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    open = await openStreams();
  }
  return open;
}

/** One row in `host`; `gate` is the relay the row whose server is down talks through. */
async function runRow([id, fault, expected], f, gate, host) {
  assert.ok(MATRIX, 'POLAR_MATRIX_URL is set (scripts/test-wasm.sh)');
  const down = fault === null;
  const rateLimited = expected === 'rate_limited';
  const unverified = expected !== 'protocol_error';
  // What the client can know of the block: a page cannot read Retry-After.
  const retryAfter = host.page ? undefined : (fault?.retry_after ?? undefined);
  const block = retryAfter ?? DEFAULT_BLOCK;
  const one = down ? 0 : 1;
  f.expectedRequests = 3 * one;
  await host.reset();
  let now = Date.now();
  const tick = async (ms) => {
    now += ms;
    await host.setNow(now);
  };
  await tick(0);
  let seen = await requestCount(MATRIX);
  const requests = async () => {
    const count = await requestCount(MATRIX);
    const n = count - seen;
    seen = count;
    return n;
  };
  const client = (name, store, baseUrl, timeout) => host.client(name, { store, baseUrl, timeout, organizationId: ORG });
  const key = await newKey({}, MATRIX);
  const other = await newKey({}, MATRIX);
  const base = gate?.url ?? MATRIX;

  // A valid cached verdict for `key`, made against the healthy emulator.
  const healthy = await client('healthy', 'cached', base, TIMEOUT);
  const seeded = await healthy.check(key);
  assert.equal(seeded.code, 'licensed/online', seeded.error?.message);
  const verifiedAt = seeded.value.verifiedAt;
  await requests();
  await tick(10_000);

  const timeout = fault?.kind === 'hang' || fault?.kind === 'slow_body' ? SHORT_TIMEOUT : TIMEOUT;
  const faulty = await client('faulty', 'cached', base, timeout);
  const bare = await client('bare', 'empty', base, timeout);
  if (down) await gate.stop();
  else await setFault(fault, MATRIX);
  try {
    // 1. validate online: docs/interfaces.md §1's code, one request.
    const validated = await faulty.validate(other);
    f.got = validated.code;
    assert.equal(validated.code, expected, `validate: ${validated.error?.message}`);
    const e = validated.error;
    assert.equal(e.kind, unverified ? 'unverified' : 'error');
    if (id === 'hang_timeout' || id === 'slow_body') assert.equal(e.timeout, true, e.message);
    if (id === 'connection_refused') assert.equal(e.timeout, false, e.message);
    if (rateLimited) assert.equal(e.retryAfter, retryAfter);
    // Refused for its size (not read to the end and then found malformed).
    if (id === 'huge_body') assert.match(e.detail, /larger than the cap/);
    // WebKitGTK's fetch hands a body cut short of its content-length over as if it were whole
    // (`cutBodyWhole`): the core then finds that it ends early. Every other host's read fails.
    if (id === 'truncated_body') assert.match(e.detail, host.cutBodyWhole ? /unexpected end at byte/ : /truncated/);
    let n = await requests();
    assert.equal(n, one, 'validate: requests');
    let total = n;

    // 2. No cache: check never grants.
    const bareCheck = await bare.check(other);
    f.noCache = bareCheck.code;
    assert.equal(bareCheck.code, expected, 'check without a cache');
    n = await requests();
    assert.equal(n, one, 'check without a cache: requests');
    total += n;
    if (rateLimited) {
      // Within the block: refused with no request.
      await tick(1000);
      assert.equal((await bare.check(other)).code, expected, 'second check without a cache');
      n = await requests();
      assert.equal(n, 0, 'a check in the 429 block sent a request');
      total += n;
    }
    assert.equal((await bare.status(other)).graceRemaining, null, 'the empty cache can grant');

    // 3. A valid cache: licensed from it, whatever the fault (none is Polar's verdict), and
    // the result says why it came from the cache.
    const cached = await faulty.check(key);
    f.cached = cached.code;
    assert.equal(cached.code, 'licensed/cache', `check with a cache: ${cached.error?.message}`);
    assert.equal(cached.value.verifiedAt, verifiedAt);
    const age = Math.floor(now / 1000) - verifiedAt;
    assert.equal(cached.value.graceRemaining, WEEK - age);
    assert.deepEqual([cached.value.reason, cached.value.cacheRefreshed], [expected, true]);
    n = await requests();
    assert.equal(n, one, 'check with a cache: requests');
    total += n;
    if (rateLimited) {
      await tick(1000);
      assert.equal((await faulty.check(key)).code, 'licensed/cache', 'second check with a cache');
      n = await requests();
      assert.equal(n, 0, 'a check in the 429 block sent a request');
      total += n;
    }
    f.requests = total;

    // 6. Every faulted connection let go: the emulator's writes fail and its streams end.
    assert.equal(await streamsClosed(), 0, 'fault bodies still streaming into abandoned connections');
  } finally {
    if (down) await gate.start();
    else await setFault(null, MATRIX);
  }

  // 4. The cached verdict is still there, unchanged.
  const kept = await faulty.status(key);
  assert.deepEqual(
    [kept.state, kept.verifiedAt, kept.denied, kept.graceRemaining > 0],
    ['present', verifiedAt, null, true],
    'the cached verdict is gone',
  );

  // 5. Fault cleared: licensed again (from the cache while a 429 block lasts, then online).
  await requests();
  if (rateLimited) {
    assert.equal((await healthy.check(key)).code, 'licensed/cache', 'after the fault, in the block');
    assert.equal(await requests(), 0, 'after the fault, in the block: requests');
    await tick(block * 1000);
  }
  assert.equal((await healthy.check(key)).code, 'licensed/online', 'after the fault');
  assert.equal(await requests(), 1, 'after the fault: requests');
  f.cacheKept = true;
}
