// The organization token's budget of the npm package's emulator (`polar-license/emulator`,
// issue #36; polar-api.md §8 and §14): 500 calls a window for all the tokens of one
// organization (100 in the sandbox), a fixed window with no block, then Polar's 429 with an
// empty body and `retry-after` the window's remaining seconds. Through `startEmulator`'s
// `tokenBudget` / `tokenWindowMs` / `sandbox` options and the seed's `token_budget` /
// `token_window_seconds`, and through the `polar-license-emulator` bin's flags, the same
// banner line and the same 429 as `polar-license emulator` (the native command line).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CLI, CONSUMER, NEEDS_CLI, ORG, README_KEY, importAsApp, started, stop } from './emulator.mjs';

const { startEmulator } = await importAsApp('emulator-budget-entry.mjs', 'polar-license/emulator', '{ startEmulator }');

const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const READ_ONLY = 'polar_oat_emulator_readonly_0123456789ab';
const OTHER_ORG = '7c1d9e2a-4b3f-4a5e-9d8c-1b2a3c4d5e6f';
const OTHER_TOKEN = 'polar_oat_other_org_0123456789abcdef01';
const OTHER_KEY = 'OTHER-11111111-2222-4333-8444-555555555555';
const BIN = join(CONSUMER, 'node_modules', '.bin', 'polar-license-emulator');

/** Two organizations, each with a key and a token; the first also a read-only token. */
const seed = (extra = {}) => ({
  organization_id: ORG,
  license_keys: [{ key: README_KEY }, { key: OTHER_KEY, organization_id: OTHER_ORG }],
  access_tokens: [
    { token: TOKEN },
    { token: READ_ONLY, scopes: ['license_keys:read'] },
    { token: OTHER_TOKEN, organization_id: OTHER_ORG },
  ],
  ...extra,
});

/** A validate on the token twin; `sent` and `answered` are performance.now() readings. */
async function validate(url, token = TOKEN, org = ORG, key = README_KEY) {
  const sent = performance.now();
  const resp = await fetch(`${url}/v1/license-keys/validate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ key, organization_id: org }),
  });
  const body = await resp.text();
  return { status: resp.status, headers: resp.headers, body, sent, answered: performance.now() };
}

const other = (url) => validate(url, OTHER_TOKEN, OTHER_ORG, OTHER_KEY);

async function spend(url, n) {
  for (let i = 0; i < n; i++) {
    const r = await validate(url);
    assert.equal(r.status, 200, `call ${i + 1} of ${n}: ${r.body}`);
  }
}

/**
 * Spends a budget of `budget` calls per `window` seconds: the next call is a 429 whose
 * `retry-after` is within the window, and once it has passed a call passes again.
 */
async function spendTheWindow(url, budget, window) {
  await spend(url, budget);
  const r = await validate(url);
  assert.equal(r.status, 429);
  const retry = Number(r.headers.get('retry-after'));
  assert.ok(retry >= 1 && retry <= window, `${retry}`);
  await sleepUntil(r.answered + retry * 1000 + 700);
  assert.equal((await validate(url)).status, 200, `the ${window} s window`);
}

/** Whole seconds as the emulator (and Redis' TTL) reports a remaining time: rounded, >= 1. */
const ttl = (ms) => Math.max(1, Math.floor((Math.max(0, ms) + 500) / 1000));
const sleepUntil = (at) => new Promise((r) => setTimeout(r, Math.max(0, at - performance.now())));

/** The header names of a 429, without the connection's own (node's keep-alive). */
const names = (headers) =>
  [...headers.keys()].filter((n) => !['connection', 'keep-alive'].includes(n)).sort();

test('tokenBudget and tokenWindowMs: the call past the budget is a 429 with retry-after the window\'s remaining seconds; every token of the organization shares it, another organization passes, the next window passes', async () => {
  const BUDGET = 20;
  const WINDOW = 4000;
  const polar = await startEmulator({ seed: seed(), tokenBudget: BUDGET, tokenWindowMs: WINDOW });
  try {
    assert.deepEqual(polar.tokenBudget(), { calls: BUDGET, windowMs: WINDOW });
    // The window opens at the first call answered: between its sending and its answer.
    const first = await validate(polar.url);
    assert.equal(first.status, 200, first.body);
    await spend(polar.url, BUDGET - 1);
    // 1.5 s into the window, so that what remains is not the whole window.
    await sleepUntil(first.answered + 1500);
    const refused = await validate(polar.url);
    assert.ok(refused.answered - first.sent < WINDOW, 'the calls took longer than the window');
    assert.equal(refused.status, 429);
    assert.equal(refused.body, '');
    assert.deepEqual(names(refused.headers), ['content-length', 'date', 'polar-version', 'retry-after']);
    const retry = Number(refused.headers.get('retry-after'));
    const least = ttl(WINDOW - (refused.answered - first.sent));
    const most = ttl(WINDOW - (refused.sent - first.answered));
    assert.ok(retry >= least && retry <= most, `retry-after ${retry}, remaining ${least} to ${most} s`);
    // The organization's other token is refused too (the budget before its scope's 403);
    // the other organization passes in the same window.
    assert.equal((await validate(polar.url, READ_ONLY)).status, 429);
    assert.equal((await other(polar.url)).status, 200);
    const again = await validate(polar.url);
    assert.equal(again.status, 429);
    assert.ok(again.answered - first.sent < WINDOW, 'still the same window');
    // After the window (the emulator's retry-after, half a second of rounding and a margin).
    await sleepUntil(refused.answered + retry * 1000 + 700);
    assert.equal((await validate(polar.url)).status, 200, 'the next window');
    assert.equal((await validate(polar.url, READ_ONLY)).status, 403, 'its scope again');
  } finally {
    await polar.close();
  }
});

test('the budget in force: 500 per minute, 100 with sandbox, the seed\'s, the option over the seed\'s; 0 is off; bad values are refused', async () => {
  const cases = [
    [{}, { calls: 500, windowMs: 60_000 }],
    [{ sandbox: true }, { calls: 100, windowMs: 60_000 }],
    [{ seed: seed({ token_budget: 7, token_window_seconds: 3 }) }, { calls: 7, windowMs: 3000 }],
    [{ seed: seed({ token_budget: 7 }), tokenBudget: 2, tokenWindowMs: 1500 }, { calls: 2, windowMs: 1500 }],
    [{ sandbox: true, tokenBudget: 0 }, { calls: 0, windowMs: 60_000 }],
  ];
  for (const [options, want] of cases) {
    const polar = await startEmulator(options);
    try {
      assert.deepEqual(polar.tokenBudget(), want, JSON.stringify(options));
    } finally {
      await polar.close();
    }
  }
  // Sandbox: the 101st call of a minute is refused.
  let polar = await startEmulator({ sandbox: true });
  try {
    await spend(polar.url, 100);
    const r = await validate(polar.url);
    assert.equal(r.status, 429);
    assert.ok(Number(r.headers.get('retry-after')) >= 59, r.headers.get('retry-after'));
  } finally {
    await polar.close();
  }
  // The seed's budget and window.
  polar = await startEmulator({ seed: seed({ token_budget: 3, token_window_seconds: 2 }) });
  try {
    await spendTheWindow(polar.url, 3, 2);
  } finally {
    await polar.close();
  }
  // Off: past Polar's 500.
  polar = await startEmulator({ tokenBudget: 0 });
  try {
    await spend(polar.url, 501);
  } finally {
    await polar.close();
  }
  for (const bad of [{ tokenBudget: -1 }, { tokenBudget: 1.5 }, { tokenWindowMs: 0 }, { tokenBudget: '5' }]) {
    await assert.rejects(startEmulator(bad), /tokenBudget|tokenWindowMs/, JSON.stringify(bad));
  }
  await assert.rejects(startEmulator({ seed: seed({ token_window_seconds: 0 }) }), /token_window_seconds/);
});

/** Runs `cmd args` to its end: { code, stdout, stderr }. */
function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: CONSUMER, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const budgetLine = (lines) => lines.find((l) => l.startsWith('token budget'));

/** Runs `fn(bin)` with `cmd args` serving, stopped after it. */
async function serving(cmd, args, fn) {
  const bin = await started(cmd, args);
  try {
    return await fn(bin);
  } finally {
    await stop(bin.child);
  }
}

test('the bin\'s --token-budget, --token-window and --sandbox: its banner and its 429s', async () => {
  await serving(BIN, ['--port', '0', '--token-budget', '3', '--token-window', '2'], async (bin) => {
    assert.equal(budgetLine(bin.lines), 'token budget: 3 calls per 2s per organization (429 past it)');
    await spendTheWindow(bin.url, 3, 2);
  });
  await serving(BIN, ['--port', '0', '--token-budget', '0'], async (bin) => {
    assert.equal(budgetLine(bin.lines), 'token budget off');
    await spend(bin.url, 501);
  });
  await serving(BIN, ['--port', '0', '--sandbox'], async (bin) => {
    assert.equal(budgetLine(bin.lines), 'token budget: 100 calls per 60s per organization (429 past it)');
    const r = await validate(bin.url);
    assert.equal(r.headers.get('x-polar-sandbox'), '1');
  });
  await serving(BIN, ['--port', '0', '--sandbox', '--token-budget=5'], async (bin) => {
    assert.equal(budgetLine(bin.lines), 'token budget: 5 calls per 60s per organization (429 past it)');
  });
});

test('the bin reads the seed file\'s token_budget and token_window_seconds; its flags win', async () => {
  const file = join(CONSUMER, 'budget-seed.json');
  writeFileSync(file, JSON.stringify(seed({ token_budget: 4, token_window_seconds: 9 })));
  await serving(BIN, ['--port', '0', '--seed', file], async (bin) => {
    assert.equal(budgetLine(bin.lines), 'token budget: 4 calls per 9s per organization (429 past it)');
    await spend(bin.url, 4);
    const r = await validate(bin.url);
    assert.equal(r.status, 429);
    assert.equal((await other(bin.url)).status, 200, 'the other organization');
  });
  const flags = ['--port', '0', '--seed', file, '--token-budget', '6', '--token-window', '3'];
  await serving(BIN, flags, async (bin) => {
    assert.equal(budgetLine(bin.lines), 'token budget: 6 calls per 3s per organization (429 past it)');
  });
});

test('the bin\'s help tells the defaults as they are; bad values are usage errors (exit 2)', async () => {
  const help = await run(BIN, ['--help']);
  assert.equal(help.code, 0);
  for (const text of [
    '--sandbox',
    "--token-budget N          an organization's token calls per window (default: the seed's",
    'token_budget, else 500, or 100 with --sandbox; 0: off)',
    "--token-window SECONDS    the token budget's window (default: the seed's",
    '--webhook-time-scale FACTOR',
    '--webhook-timeout SECONDS',
  ]) {
    assert.ok(help.stdout.includes(text), `${text}\n${help.stdout}`);
  }
  for (const args of [
    ['--token-budget', 'x'],
    ['--token-budget', '-1'],
    ['--token-budget', '4294967296'],
    ['--token-window', '0'],
    ['--webhook-time-scale', '0'],
    ['--webhook-timeout', 'soon'],
    ['--sandbox=yes'],
  ]) {
    const r = await run(BIN, ['--port', '0', ...args]);
    assert.equal(r.code, 2, `${args}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^error: /, args.join(' '));
  }
});

test('the bin\'s budget line and 429 are the native command line\'s', { skip: NEEDS_CLI }, async () => {
  for (const args of [[], ['--sandbox'], ['--token-budget', '2', '--token-window', '5'], ['--token-budget', '0']]) {
    await serving(BIN, ['--port', '0', ...args], (js) =>
      serving(CLI, ['emulator', '--port', '0', ...args], async (rust) => {
        assert.equal(budgetLine(js.lines), budgetLine(rust.lines), args.join(' '));
        if (args[1] === '2') {
          await spend(js.url, 2);
          await spend(rust.url, 2);
          const [a, b] = [await validate(js.url), await validate(rust.url)];
          assert.deepEqual([a.status, a.body, names(a.headers)], [b.status, b.body, names(b.headers)]);
          assert.equal(a.headers.get('retry-after'), b.headers.get('retry-after'));
        }
      }),
    );
  }
});

test('the bin\'s --webhook-time-scale and --webhook-timeout: a slow receiver\'s attempt times out and is retried at once', async () => {
  const { createServer } = await import('node:http');
  const got = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      got.push({ id: req.headers['webhook-id'], at: performance.now() });
      // The first attempt is answered after 2 s, past the 0.3 s timeout; the retry at once.
      setTimeout(() => res.writeHead(204).end(), got.length === 1 ? 2000 : 0);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const hook = `http://127.0.0.1:${server.address().port}/polar`;
  let bin;
  try {
    bin = await started(BIN, ['--port', '0', '--webhook-time-scale', '0.001', '--webhook-timeout', '0.3']);
    const resp = await fetch(`${bin.url}/v1/webhooks/endpoints`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: hook, format: 'raw', events: ['benefit_grant.updated'] }),
    });
    assert.equal(resp.status, 201, await resp.clone().text());
    const patched = await fetch(`${bin.url}/__emulator/keys/${README_KEY}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ limit_activations: 5 }),
    });
    assert.equal(patched.status, 200);
    const end = performance.now() + 10_000;
    while (got.length < 2 && performance.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(got.length, 2, 'a retry');
    assert.equal(got[1].id, got[0].id);
    // Timed out at 0.3 s, retried 1-2 ms (2 s scaled, with jitter) later: well before the slow answer. The
    // attempt began before this receiver saw it (by however long a loaded machine takes to
    // hand it over: 31 ms once, under Node 18 in CI), so the gap seen is 330 ms less that
    // delay; 200 ms tells a retry after the timeout from one at once all the same.
    const gap = got[1].at - got[0].at;
    assert.ok(gap >= 200 && gap < 1500, `${gap} ms`);
  } finally {
    if (bin) await stop(bin.child);
    server.closeAllConnections?.();
    await new Promise((r) => server.close(r));
  }
});

/** A public validate of the demo key, pinned to `version` (none: the server's default). */
async function pinned(url, version) {
  const resp = await fetch(`${url}/v1/customer-portal/license-keys/validate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(version ? { 'polar-version': version } : {}) },
    body: JSON.stringify({ key: README_KEY, organization_id: ORG }),
  });
  return { status: resp.status, body: await resp.text() };
}

test('the bin\'s --api-versions and --api-version: a version rotated out is a bare 404, the default is served, one not served is a usage error', async () => {
  await serving(BIN, ['--port', '0', '--api-versions', '2026-10,2027-01', '--api-version=2026-10'], async (bin) => {
    assert.deepEqual(await pinned(bin.url, '2026-04'), { status: 404, body: '{"detail":"Not Found"}' });
    assert.equal((await pinned(bin.url)).status, 200);
    assert.equal((await pinned(bin.url, '2027-01')).status, 200);
  });
  // 2027-01 as the default: its fields (the member) in an answer that names no version.
  await serving(BIN, ['--port', '0', '--api-version', '2027-01'], async (bin) => {
    const r = await pinned(bin.url);
    assert.equal(r.status, 200, r.body);
    assert.ok('member' in JSON.parse(r.body), r.body);
  });
  await serving(BIN, ['--port', '0'], async (bin) => {
    assert.ok(!('member' in JSON.parse((await pinned(bin.url)).body)), 'the current 2026-10 has no member');
  });
  const bad = await run(BIN, ['--port', '0', '--api-versions', '2026-10', '--api-version', '2027-01']);
  assert.equal(bad.code, 2, bad.stdout + bad.stderr);
  assert.match(bad.stderr, /^error: the default API version 2027-01 is not among the served ones \(2026-10\)/);
  assert.doesNotMatch(bad.stderr, /bad seed/);
  const help = await run(BIN, ['--help']);
  assert.ok(help.stdout.includes('--api-version YYYY-MM') && help.stdout.includes('--api-versions LIST'), help.stdout);
});

test('the bin\'s versions answer as the native command line\'s', { skip: NEEDS_CLI }, async () => {
  const args = ['--api-versions', '2026-10,2027-01', '--api-version', '2027-01'];
  await serving(BIN, ['--port', '0', ...args], (js) =>
    serving(CLI, ['emulator', '--port', '0', ...args], async (rust) => {
      for (const version of ['2026-04', '2026-10', '2027-01', undefined]) {
        const [a, b] = [await pinned(js.url, version), await pinned(rust.url, version)];
        assert.equal(a.status, b.status, String(version));
        // The same fields (ids and times differ from one emulator to the other).
        const fields = (r) => (r.status === 200 ? Object.keys(JSON.parse(r.body)).sort() : r.body);
        assert.deepEqual(fields(a), fields(b), String(version));
      }
    }),
  );
});
