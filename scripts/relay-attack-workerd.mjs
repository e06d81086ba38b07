// The relay's attack benchmark (crates/relay/examples/relay_attack) against the npm relay under
// workerd: this starts the npm package's emulator and `polar-license/relay`
// (pkg-template/relay-handler.js with its Durable Object store on workerd's disk) as
// tests/js/relay-hostile.test.mjs does, then runs the benchmark's row against it by URL, the
// relay's CPU read from workerd's process. The rows are the Rust example's, not copied here.
//
// Usage (after scripts/build-npm.sh and the package installed in $CONSUMER, as
// scripts/test-wasm.sh does):
//   cargo build --release -p polar-license-relay --example relay_attack
//   CONSUMER=target/npm/consumer node scripts/relay-attack-workerd.mjs \
//     target/release/examples/relay_attack bodies 200
// Rows that run here: `bodies [N] [SHAPES]` (nested bodies, keys to the cap; no per-address
// limit, as natively) and `seats [SECONDS]` (a seats flood; the relay's default limits and
// seat options, the benchmark's keys added to this Polar first, each client's address in
// `cf-connecting-ip`) and `door [N]` (CORS preflights and forged deliveries; the relay's
// defaults and the row's webhook secret); issue #62's `office [N]` (40 clients at once from one
// address, per-address limits off), `crowd [ADDRESSES] [EACH]` (16 × 16 connections held with
// preflights, the relay's defaults, another address's validate), `hooks [FORGED]` (a signed
// revocation beside forged deliveries from one address, per-address limits off) and
// `store [SECONDS] [CAP_KIB]` (the conditions flood against a store capped at CAP_KIB, default
// 1024; its bytes read from /healthz): these add their keys to this Polar themselves (its admin
// routes, `--polar`) and print `met` or `MISSED` (a missed row exits 1); and the budget part's
// `budget [SCALE] [MINUTES] [BUDGET] refused|defaults` (issue #62: the refused keys' flood
// beside new customers' activations; this Polar's token budget BUDGET a window of 60 × SCALE s,
// its webhook schedule scaled alike, an endpoint for the grant events made here before the
// relay starts and given to it as its webhook secret; the relay's budget BUDGET, a quarter
// kept, its window the same through the test-only `store.testOnlyBudgetSeconds`); issue #76's
// `pools [SECONDS] [CAP_KIB]` (a pool flood: spellings of one organization id and ever-new keys
// acquiring, the store capped at CAP_KIB) and `usage [SECONDS] [BUDGET]` (one key's usage flood
// beside other customers' first validates; `recordUsage` and `signEntitlements` on).
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

// The suites' helpers ask for a shared emulator's URL: this script starts its own.
process.env.POLAR_EMULATOR_URL ??= 'http://127.0.0.1:9';
const { freePort, relayUnderWorkerd, storeWorker } = await import('../tests/js/workerd.mjs');
const { PACKAGE_DIR, README_KEY, relaySigningKey } = await import('../tests/js/emulator.mjs');

const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const VALIDATE = '/v1/customer-portal/license-keys/validate';
const ROWS = new Set(['bodies', 'seats', 'door', 'office', 'crowd', 'hooks', 'store', 'budget', 'pools', 'usage']);
/** The door row's webhook secret (crates/relay/examples/relay_attack/door.rs's). */
const SECRET = 'whsec_b3BzLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=';
/** Each row's relay options (relay-handler.js's), and the keys it adds to Polar (the Rust row's). */
const SETUP = {
  bodies: { options: `perIp: '0', perKey: '0',`, keys: [] },
  door: { options: `store: { webhookSecret: '${SECRET}' },`, keys: [] },
  office: { options: `perIp: '0', perKey: '0', store: { webhookSecret: '${SECRET}' },`, keys: [], polar: true },
  crowd: { options: `store: { webhookSecret: '${SECRET}' },`, keys: [], polar: true },
  hooks: { options: `perIp: '0', perKey: '0', store: { webhookSecret: '${SECRET}' },`, keys: [], polar: true },
  // The Rust row's store: roster off, Polar's budget out of the way, capped at CAP_KIB.
  store: {
    options: (rest) =>
      `perIp: '0', perKey: '0', store: { roster: false, budget: 10000000, budgetReserve: 1000, maxBytes: ${
        1024 * Number(rest.filter((a) => !a.startsWith('--'))[1] ?? 1024)
      } },`,
    keys: [],
    polar: true,
    pid: true,
    // Polar's token budget out of the way: the flood asks for new keys as fast as it is answered.
    emulator: { tokenBudget: 10000000 },
  },
  // The budget part's arguments: SCALE (0.1), MINUTES (2), BUDGET (50: the benchmark's), the rows.
  budget: {
    numbers: (rest) => {
      const [scale = '0.1', , budget = '50'] = rest.filter((a) => !a.startsWith('--'));
      return { windowS: Math.round(60 * Number(scale)), budget: Number(budget), scale: Number(scale) };
    },
    options: (rest, secret) => {
      const { windowS, budget } = SETUP.budget.numbers(rest);
      return `store: { webhookSecret: '${secret}', budget: ${budget}, budgetReserve: ${Math.floor(budget / 4)}, testOnlyBudgetSeconds: ${windowS} },`;
    },
    keys: [],
    polar: true,
    emulator: (rest) => {
      const { windowS, budget, scale } = SETUP.budget.numbers(rest);
      return { tokenBudget: budget, tokenWindowMs: windowS * 1000, webhookTimeScale: scale };
    },
    // Polar's endpoint for the grant events, pointed at the relay's port (its secret the relay's).
    endpoint: ['benefit_grant.created', 'benefit_grant.updated', 'benefit_grant.revoked'],
  },
  // Issue #76's pool flood: the relay's default limits and seat options, the store capped at
  // CAP_KIB (default 1024), the keys added by the row (`--polar`).
  pools: {
    options: (rest) =>
      `seats: {}, store: { maxBytes: ${1024 * Number(rest.filter((a) => !a.startsWith('--'))[1] ?? 1024)} },`,
    keys: [],
    polar: true,
  },
  // Issue #76's usage flood: usage and entitlements on, the roster off, the row's budget
  // (BUDGET, default 100, a quarter kept), the keys added by the row (`--polar`).
  usage: {
    options: (rest) => {
      const budget = Number(rest.filter((a) => !a.startsWith('--'))[1] ?? 100);
      return `recordUsage: true, signEntitlements: true, store: { roster: false, budget: ${budget}, budgetReserve: ${Math.floor(budget / 4)} },`;
    },
    keys: [],
    polar: true,
  },
  seats: {
    options: `seats: {},`,
    keys: [
      ['SEATFLOOD-TARGET-4A5B6C', 5],
      ...Array.from({ length: 8 }, (_, i) => [`SEATFLOOD-OTHER-${i}-4A5B6C`, 2]),
      ...Array.from({ length: 20 }, (_, i) => [`SEATFLOOD-KNOWN-${String(i).padStart(2, '0')}-4A5B6C`, 3]),
    ],
  },
};

const [bin, row, ...rest] = process.argv.slice(2);
if (!bin || !ROWS.has(row)) {
  console.error(`usage: relay-attack-workerd.mjs RELAY_ATTACK_BIN ${[...ROWS].join('|')} [ARGS]`);
  process.exit(2);
}
const { startEmulator } = await import(pathToFileURL(join(PACKAGE_DIR, 'emulator.js')).href);
const setup = SETUP[row];
const polar = await startEmulator(typeof setup.emulator === 'function' ? setup.emulator(rest) : setup.emulator);
for (const [key, limit] of setup.keys) polar.addKey({ key, limit_activations: limit });
const dir = await mkdtemp(join(tmpdir(), 'polar-license-attack-do-'));
const port = await freePort();
let relay;
let code = 1;
try {
  let secret;
  if (setup.endpoint) {
    const made = await fetch(`${polar.url}/v1/webhooks/endpoints`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: `http://127.0.0.1:${port}/v1/webhooks/polar`, format: 'raw', events: setup.endpoint }),
    });
    if (made.status !== 201 && made.status !== 200) throw new Error(`the webhook endpoint: ${made.status} ${await made.text()}`);
    ({ secret } = await made.json());
  }
  relay = await relayUnderWorkerd({
    port,
    worker: storeWorker(typeof setup.options === 'function' ? setup.options(rest, secret) : setup.options),
    polarUrl: polar.url,
    bindings: { POLAR_ACCESS_TOKEN: TOKEN, RELAY_SIGNING_KEY: relaySigningKey('attack').text },
    store: { dir, uniqueKey: 'polar-license-attack' },
    probe: VALIDATE,
  });
  const { polar: admin, pid } = setup;
  const args = [
    row,
    ...rest,
    '--url',
    relay.url,
    ...(admin ? ['--polar', polar.url] : []),
    ...(pid ? ['--pid', String(relay.pid)] : []),
    ...(row === 'seats' || admin ? [] : ['--pid', String(relay.pid), '--key', README_KEY]),
  ];
  console.log(`workerd (pid ${relay.pid}) at ${relay.url}; ${bin} ${args.join(' ')}`);
  const child = spawn(bin, args, { stdio: 'inherit' });
  code = await new Promise((r) => child.once('exit', (c) => r(c ?? 1)));
} finally {
  await relay?.close();
  await polar.close();
  await rm(dir, { recursive: true, force: true });
}
process.exit(code);
