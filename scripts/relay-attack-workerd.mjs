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
// routes, `--polar`) and print `met` or `MISSED` (a missed row exits 1).
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
const ROWS = new Set(['bodies', 'seats', 'door', 'office', 'crowd', 'hooks', 'store']);
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
const polar = await startEmulator(SETUP[row].emulator);
for (const [key, limit] of SETUP[row].keys) polar.addKey({ key, limit_activations: limit });
const dir = await mkdtemp(join(tmpdir(), 'polar-license-attack-do-'));
let relay;
let code = 1;
try {
  relay = await relayUnderWorkerd({
    port: await freePort(),
    worker: storeWorker(typeof SETUP[row].options === 'function' ? SETUP[row].options(rest) : SETUP[row].options),
    polarUrl: polar.url,
    bindings: { POLAR_ACCESS_TOKEN: TOKEN, RELAY_SIGNING_KEY: relaySigningKey('attack').text },
    store: { dir, uniqueKey: 'polar-license-attack' },
    probe: VALIDATE,
  });
  const { polar: admin, pid } = SETUP[row];
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
