// Issue #45, item 8: one behaviour on both hosts. The same rows against the native relay
// (`polar-license relay serve`, POLAR_CLI) and the npm package's relay under Cloudflare's
// Workers runtime (`workerd`, the store in a Durable Object), both in front of one Polar (the
// npm package's emulator, this file's own, behind a loopback proxy that counts the calls and
// can turn into a slow, failing Polar). Each row sends the same requests to both and
// compares what a client sees: the status, the headers a client reads (the source, `Age`,
// `Retry-After`, the lease, CORS, content type) and the body's gist. Then the option checks:
// the same bad store options (budget, freshness) refused by both, naming the same option
// (`relay serve`'s flags; `createRelay`'s `store`, the same wasm core as on Workers).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, relayUnderWorkerd, storeWorker } from './workerd.mjs';
import { CLI, ORG, PACKAGE_DIR, importAsApp, relaySigningKey } from './emulator.mjs';

const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const ROUTES = '/v1/customer-portal/license-keys';
const VALIDATE = `${ROUTES}/validate`;
const skip = CLI ? false : 'needs the native command line (POLAR_CLI)';

// The store's budget on both hosts: small, so that a row reaches it.
const BUDGET = 14;
const RESERVE = 2;

const relayPkg = await importAsApp('relay-parity-import.mjs', 'polar-license/relay');
const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);

const keyText = (kid) => relaySigningKey(kid).text;

// ---- Polar: the emulator behind a proxy that counts, or a slow Polar that fails -----------

// An emulator of this file's own (the npm package's): no other suite spends its token budget.
let emulator;
let mode = 'up';
let calls = 0;
const polar = createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  calls++;
  if (mode === 'slow503') {
    await new Promise((r) => setTimeout(r, 400));
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end('{"detail":"Service Unavailable"}');
    return;
  }
  const headers = { ...req.headers };
  delete headers.host;
  delete headers['content-length'];
  const r = await fetch(`${emulator.url}${req.url}`, {
    method: req.method,
    headers,
    body: req.method === 'GET' ? undefined : Buffer.concat(chunks),
  });
  const out = {};
  for (const [k, v] of r.headers) if (!['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(k)) out[k] = v;
  res.writeHead(r.status, out);
  res.end(Buffer.from(await r.arrayBuffer()));
});
let polarUrl;

// ---- the two hosts ---------------------------------------------------------------------

/** `polar-license relay serve` with `args`; resolves `{url, close}` once it serves, or
 * `{code, stderr}` when it exits first. */
function relayServe(args, dir) {
  const child = spawn(CLI, ['--base-url', polarUrl, 'relay', 'serve', ...args], {
    env: { PATH: process.env.PATH, HOME: dir, XDG_DATA_HOME: dir, POLAR_ACCESS_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`relay serve neither served nor exited in 20 s: ${stderr}`));
    }, 20_000);
    child.stdout.on('data', (d) => {
      stdout += d;
      const url = /^listening on (\S+)$/m.exec(stdout)?.[1];
      if (url && stdout.includes('serving until killed')) {
        clearTimeout(timer);
        resolve({
          url,
          close: async () => {
            child.kill('SIGTERM');
            await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
          },
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

const WORKER = storeWorker(`perIp: '0',
  perKey: '0',
  breakerFailures: 0,
  store: { budget: ${BUDGET}, budgetReserve: ${RESERVE} },`);

async function startWorkerd(storeDir) {
  return relayUnderWorkerd({
    port: await freePort(),
    worker: WORKER,
    polarUrl,
    bindings: { POLAR_ACCESS_TOKEN: TOKEN, RELAY_SIGNING_KEY: keyText('parity-js') },
    store: { dir: storeDir, uniqueKey: 'polar-relay-parity-test' },
    probe: VALIDATE,
  });
}

const hosts = {};
let scratch;
before(async () => {
  if (skip) return;
  emulator = await startEmulator();
  await new Promise((r) => polar.listen(0, '127.0.0.1', r));
  polarUrl = `http://127.0.0.1:${polar.address().port}`;
  scratch = await mkdtemp(join(tmpdir(), 'polar-license-parity-'));
  const keyFile = join(scratch, 'relay.key');
  const keygen = spawn(CLI, ['relay', 'keygen', '--out', keyFile], { stdio: 'ignore', env: { PATH: process.env.PATH, HOME: scratch } });
  assert.equal(await new Promise((r) => keygen.once('exit', r)), 0, 'relay keygen');
  const native = await relayServe(
    ['--signing-key', keyFile, '--port', '0', '--per-ip', '0', '--per-key', '0', '--store', 'memory', '--budget', `${BUDGET}`, '--budget-reserve', `${RESERVE}`, '--breaker-failures', '0'],
    scratch,
  );
  assert.ok(native.url, `relay serve did not start: ${native.stderr}`);
  hosts.native = native;
  hosts.workers = await startWorkerd(await mkdtemp(join(tmpdir(), 'polar-license-parity-do-')));
});
after(async () => {
  await hosts.native?.close();
  await hosts.workers?.close();
  if (polarUrl) await new Promise((r) => polar.close(r));
  await emulator?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

// ---- what a client sees ----------------------------------------------------------------

const post = (path, body, headers = {}) => ({ method: 'POST', path, body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
const check = (key, extra = {}) => post(VALIDATE, { key, organization_id: ORG, ...extra });

/** The answer as a client reads it: status, the headers it reads, the body's gist. */
async function send(base, r) {
  const resp = await fetch(`${base}${r.path}`, { method: r.method, headers: r.headers, body: r.body });
  const h = (name) => resp.headers.get(name);
  const text = await resp.text();
  let gist;
  try {
    const v = JSON.parse(text);
    gist = v.detail !== undefined ? { detail: typeof v.detail === 'string' ? v.detail : 'list', error: v.error ?? null } : { status: v.status ?? null, key: v.key !== undefined };
  } catch {
    gist = { text: text.slice(0, 60) };
  }
  const age = h('age');
  const retry = h('retry-after');
  // Every header but the transport's own, the volatile values as what they are.
  const VOLATILE = { 'polar-license-lease': 'lease', age: 'seconds', 'retry-after': 'seconds' };
  const headers = [...resp.headers]
    .filter(([k]) => !['date', 'content-length', 'connection', 'keep-alive', 'transfer-encoding', 'server'].includes(k))
    .map(([k, v]) => `${k}: ${VOLATILE[k] ?? v}`)
    .sort();
  return {
    headers,
    status: resp.status,
    source: h('polar-license-source'),
    // A replay says how old it is: present, a whole number of seconds (a few at most here).
    age: age === null ? null : /^\d+$/.test(age) && Number(age) < 30 ? 'seconds' : `bad: ${age}`,
    retryAfter: retry === null ? null : /^\d+$/.test(retry) && Number(retry) <= 60 ? 'seconds' : `bad: ${retry}`,
    lease: h('polar-license-lease') === null ? null : 'lease',
    contentType: h('content-type'),
    allowOrigin: h('access-control-allow-origin'),
    exposed: h('access-control-expose-headers'),
    allowMethods: h('access-control-allow-methods'),
    gist,
  };
}

/** Runs `row` (an async function of a host's base URL, returning what it saw) on both hosts
 * and asserts they saw the same; returns the native host's. */
async function both(row) {
  const native = await row(hosts.native.url, 'native');
  const workers = await row(hosts.workers.url, 'workers');
  assert.deepEqual(workers, native, 'the Workers relay answers as the native one');
  return native;
}

/** A new granted key in the emulator. */
function fresh() {
  const key = `PARITY-${randomBytes(8).toString('hex').toUpperCase()}`;
  emulator.addKey({ key, limit_activations: 3 });
  return key;
}

test('both hosts: a grant, then the stored answer with its Age', { skip }, async () => {
  const seen = await both(async (base) => {
    const key = fresh();
    const before = calls;
    const first = await send(base, check(key));
    const second = await send(base, check(key));
    return { first, second, calls: calls - before };
  });
  assert.equal(seen.first.status, 200);
  assert.deepEqual([seen.first.source, seen.first.age, seen.first.lease], ['polar', null, 'lease']);
  assert.equal(seen.second.status, 200);
  assert.deepEqual([seen.second.source, seen.second.age, seen.second.lease], ['store', 'seconds', 'lease']);
  assert.equal(seen.calls, 1, 'the second from the store');
});

test("both hosts: Polar's denial, then the stored denial", { skip }, async () => {
  const rows = await both(async (base, host) => {
    const key = `PARITY-UNKNOWN-${host}-${randomBytes(6).toString('hex')}`;
    const before = calls;
    const first = await send(base, check(key));
    const second = await send(base, check(key));
    return { first, second, calls: calls - before };
  });
  assert.deepEqual([rows.first.status, rows.first.source, rows.first.lease], [404, 'polar', null]);
  assert.deepEqual([rows.second.status, rows.second.source, rows.second.lease], [404, 'store', null]);
  assert.equal(rows.calls, 1);
});

test("both hosts: the relay's own answers (a bad body, an unknown route, a preflight, webhooks off)", { skip }, async () => {
  const seen = await both(async (base) => ({
    noKey: await send(base, post(VALIDATE, { organization_id: ORG })),
    notJson: await send(base, post(VALIDATE, '{"key":')),
    badOrg: await send(base, check('PARITY-X', { organization_id: 'nope' })),
    route: await send(base, post(`${ROUTES}/nothing`, {})),
    preflight: await send(base, { method: 'OPTIONS', path: VALIDATE, headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } }),
    webhook: await send(base, post('/v1/webhooks/polar', {})),
  }));
  assert.equal(seen.noKey.status, 422);
  assert.equal(seen.preflight.status, 204);
});

// Its five failed calls in a row would open the breaker (5 failures by default): both shared
// hosts run with the breaker off (--breaker-failures 0, breakerFailures: 0), so the rows after
// it still reach Polar; the breaker has rows of its own below.
test('both hosts: a check that waits for two flights that fail asks Polar itself, never a 502 of its own', { skip }, async () => {
  const seen = await both(async (base, host) => {
    const key = `PARITY-FLIGHT-${host}-${randomBytes(6).toString('hex')}`;
    mode = 'slow503';
    const before = calls;
    try {
      // All five arrive during the first call: four wait for it; it fails (nothing stored),
      // one of them leads the second, three wait again; it fails; those three have waited
      // twice and ask Polar themselves.
      const answers = await Promise.all(Array.from({ length: 5 }, () => send(base, check(key))));
      return { answers: answers.sort((a, b) => a.status - b.status), calls: calls - before };
    } finally {
      mode = 'up';
    }
  });
  for (const a of seen.answers) {
    assert.deepEqual([a.status, a.source, a.gist.detail], [503, 'polar', 'Service Unavailable']);
  }
  assert.equal(seen.calls, 5);
});

test('both hosts: activations spend the reserve; validates past the budget are answered 429 with Retry-After', { skip }, async () => {
  const seen = await both(async (base) => {
    const key = fresh();
    const granted = await send(base, check(key));
    const activated = await send(base, post(`${ROUTES}/activate`, { key, organization_id: ORG, label: 'parity' }));
    const answers = [];
    for (let i = 0; i < BUDGET + 2; i++) {
      const a = await send(base, check(fresh()));
      answers.push(a);
      if (a.status === 429) break;
    }
    const limited = answers.at(-1);
    // The stored grant still answers with the budget spent.
    const stored = await send(base, check(key));
    return { granted, activated, polar: answers.length - 1, limited, stored };
  });
  assert.deepEqual([seen.granted.status, seen.granted.source], [200, 'polar']);
  assert.equal(seen.activated.status, 200, JSON.stringify(seen.activated));
  assert.deepEqual([seen.stored.status, seen.stored.source, seen.stored.age], [200, 'store', 'seconds']);
  assert.deepEqual([seen.limited.status, seen.limited.retryAfter], [429, 'seconds']);
  assert.ok(seen.polar >= 1 && seen.polar <= BUDGET, `${seen.polar} validates before the 429`);
});

// ---- the option checks -------------------------------------------------------------------

/** `relay serve`'s verdict on `args`: the option it names when it refuses, or `accepted`. */
async function nativeOptions(args) {
  const keyFile = join(scratch, 'relay.key');
  const r = await relayServe(['--signing-key', keyFile, '--port', '0', '--store', 'memory', ...args], scratch);
  if (r.url) {
    await r.close();
    return 'accepted';
  }
  assert.equal(r.code, 2, `a usage error: ${r.stderr}`);
  return named(r.stderr);
}

/** The option an error names, in `relay serve`'s spelling (`--lease-days`, `lease_days` or
 * `leaseDays` all name `lease-days`); the first named wins. */
function named(text) {
  const m = /(budget|fresh[-_]?for|stale[-_]?for|per[-_]?ip|per[-_]?key|lease[-_]?days|max[-_]?entries|max[-_]?body[-_]?bytes|breaker[-_]?open[-_]?for)/i.exec(String(text));
  if (!m) return `unnamed: ${text}`;
  const name = m[1].toLowerCase().replace(/[-_]/g, '');
  return { budget: 'budget', freshfor: 'fresh-for', stalefor: 'fresh-for', perip: 'per-ip', perkey: 'per-key', leasedays: 'lease-days', maxentries: 'max-entries', maxbodybytes: 'max-body-bytes', breakeropenfor: 'breaker-open-for' }[name];
}

/** The npm relay's verdict on `store` options: the option it names when it refuses. */
async function npmOptions(options) {
  const relay = relayPkg.createRelay({ accessToken: TOKEN, signingKey: keyText('opt'), baseUrl: polarUrl, ...options });
  try {
    await relay.ready();
    return 'accepted';
  } catch (e) {
    return named(e.message);
  }
}

const OPTION_ROWS = [
  // [what, relay serve's flags, createRelay's options, expected]
  ['budget 0', ['--budget', '0'], { store: { budget: 0 } }, 'budget'],
  ['reserve = budget', ['--budget', '10', '--budget-reserve', '10'], { store: { budget: 10, budgetReserve: 10 } }, 'budget'],
  ['reserve > budget', ['--budget', '10', '--budget-reserve', '11'], { store: { budget: 10, budgetReserve: 11 } }, 'budget'],
  ['fresh-for 0', ['--fresh-for', '0'], { store: { freshFor: 0 } }, 'fresh-for'],
  ['stale-for below fresh-for', ['--fresh-for', '20', '--stale-for', '10'], { store: { freshFor: 20, staleFor: 10 } }, 'fresh-for'],
  ['a bad per-IP rate', ['--per-ip', 'lots'], { perIp: 'lots', store: {} }, 'per-ip'],
  ['lease of 0 days', ['--lease-days', '0'], { leaseDays: 0, store: {} }, 'lease-days'],
  ['lease of 367 days', ['--lease-days', '367'], { leaseDays: 367, store: {} }, 'lease-days'],
  ['a bad per-key rate', ['--per-key', '1/x'], { perKey: '1/x', store: {} }, 'per-key'],
  ['no entries', ['--store-max-entries', '0'], { store: { maxEntries: 0 } }, 'accepted'],
  ['no body', ['--max-body-bytes', '0'], { maxBodyBytes: 0, store: {} }, 'accepted'],
  ['the smallest usable', ['--budget', '1', '--budget-reserve', '0', '--fresh-for', '1', '--stale-for', '1', '--denial-for', '0'], { store: { budget: 1, budgetReserve: 0, freshFor: 1, staleFor: 1, denialFor: 0 } }, 'accepted'],
  ['a breaker open for 0 s', ['--breaker-open-for', '0'], { breakerOpenFor: 0, store: {} }, 'breaker-open-for'],
  ['a breaker open for 3601 s', ['--breaker-open-for', '3601'], { breakerOpenFor: 3601, store: {} }, 'breaker-open-for'],
  ['the breaker off', ['--breaker-failures', '0'], { breakerFailures: 0, store: {} }, 'accepted'],
  ['the defaults', [], { store: {} }, 'accepted'],
];

test('both hosts: the same store options refused, naming the same option', { skip }, async () => {
  const table = [];
  for (const [what, flags, options, expected] of OPTION_ROWS) {
    table.push([what, await nativeOptions(flags), await npmOptions(options), expected]);
  }
  assert.deepEqual(
    table.map(([what, native, npm]) => [what, native, npm]),
    table.map(([what, , , expected]) => [what, expected, expected]),
  );
});
