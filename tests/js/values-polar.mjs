// The Polar of issue #68's values rows and how its relays start, shared by the two that play
// them in node: tests/js/relay-values.test.mjs (through the npm package) and
// tests/js/values-world.mjs (every other face's runner). It needs no environment of
// scripts/test-wasm.sh's (tests/js/emulator.mjs does, values-world.mjs runs without it): the
// native command line is POLAR_CLI, and the Workers host's modules are read only when asked
// for.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';

/** The native command line (`polar-license`). */
const CLI = process.env.POLAR_CLI;

export const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
export const VALIDATE = '/v1/customer-portal/license-keys/validate';
export const LICENSE = '3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d';
export const RESUMES_AT = '2031-06-03T00:00:00Z';
/** The webhook events a relay's endpoint at the emulator subscribes to. */
export const EVENTS = [
  'order.refunded',
  'customer_seat.revoked',
  'subscription.past_due',
  'subscription.updated',
  'subscription.canceled',
  'subscription.revoked',
  'subscription.paused',
  'subscription.resumed',
  'subscription.uncanceled',
  'benefit.updated',
  'benefit_grant.created',
  'benefit_grant.updated',
  'benefit_grant.revoked',
  'benefit_grant.cycled',
  'customer.state_changed',
];
/** The Feature Flag's values (typed as Polar's metadata: integer, string, float, boolean). */
export const VALUES = { max_upload_size: 10, role: 'editor', ratio: 1.5, beta: true };
/** The lifecycle cases, a key each. */
export const CASES = ['paused', 'canceled', 'past_due', 'seat_revoked', 'refunded', 'rotated'];
/** The meter (the sum of each event's `units`) and the credit benefit on it. */
export const METER = '4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e';
export const CREDIT = '6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a';
/** The event name the meter counts. */
export const EVENT = 'tokens_used';

/** A UUID v4 whose last two hex digits are `n`, of family `f` (one hex digit). */
export const uuid = (f, n) => `${f}a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c${n.toString(16).padStart(2, '0')}`;

/**
 * The native command line (POLAR_CLI) with `args`, its home `home` and more of its environment
 * `env`; resolves `{ url, close, child, stdout, stderr }` once its stdout has `listening on URL`
 * and `ready` (none: the URL alone; `stdout` its text then, `stderr()` its text so far), rejects
 * when it has not served in 20 s, and when it exits first (or resolves with `exited(code,
 * stderr)`, if given). `close()` stops it (SIGTERM) and resolves once it has exited.
 */
export function served(args, { home, env = {}, ready = 'serving until killed', exited } = {}) {
  const child = spawn(CLI, args, {
    env: { PATH: process.env.PATH, HOME: home, XDG_DATA_HOME: home, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} did not serve in 20 s: ${stderr}`));
    }, 20_000);
    child.stdout.on('data', (d) => {
      stdout += d;
      const url = /listening on (http\S+)/.exec(stdout)?.[1];
      if (url && (!ready || stdout.includes(ready))) {
        clearTimeout(timer);
        resolve({
          url,
          child,
          stdout,
          stderr: () => stderr,
          close: () =>
            new Promise((done) => {
              if (child.exitCode !== null || child.signalCode !== null) return done();
              child.once('exit', done);
              child.kill('SIGTERM');
            }),
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (exited) resolve(exited(code, stderr));
      else reject(new Error(`${args.join(' ')} exited (${code}): ${stderr}`));
    });
  });
}

/** The emulator's arguments (bar `--port`) on the seed file in `scratch`, its state in a file
 * there (so that it can be stopped and started again on its port). */
export const emulatorArgs = (scratch) => [
  'emulator', '--seed', join(scratch, 'seed.json'), '--state', join(scratch, 'polar-state.json'), '--webhook-time-scale', '0.0001',
];

/** `relay keygen` into `scratch`: `{ keyFile, pair }` (the public pair, for signed mode);
 * throws when it fails. */
export async function keygen(scratch) {
  const keyFile = join(scratch, 'relay.key');
  const child = spawn(CLI, ['relay', 'keygen', '--out', keyFile], { stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: process.env.PATH, HOME: scratch } });
  let pair = '';
  child.stdout.on('data', (d) => (pair += d));
  const code = await new Promise((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`relay keygen failed (${code})`);
  return { keyFile, pair: pair.trim() };
}

/**
 * A relay in front of `polarUrl` on `host` (`native`: `relay serve`; `workers`: the installed
 * package's relay under workerd, its store in a Durable Object named `name`), signing the values
 * into the leases with the key in `keyFile` and taking usage; with the seller's rule
 * (`--refuse-at-zero-credits`) when `rule`; its webhooks from `endpoint` (none: no webhooks).
 * Resolves `{ url, close }`.
 */
export async function relayOn(host, { polarUrl, scratch, keyFile, endpoint, rule, name }) {
  const secret = endpoint ? { POLAR_WEBHOOK_SECRET: endpoint.secret } : {};
  if (host === 'native') {
    const args = ['--base-url', polarUrl, 'relay', 'serve', '--signing-key', keyFile, '--port', '0', '--per-ip', '0', '--per-key', '0',
      '--store', 'memory', '--reconcile-every', '0', '--sign-entitlements', '--record-usage', ...(rule ? ['--refuse-at-zero-credits'] : [])];
    return served(args, { home: scratch, env: { POLAR_ACCESS_TOKEN: TOKEN, ...secret } });
  }
  // tests/js/workerd.mjs reads tests/js/emulator.mjs, which asks for an emulator URL it does not
  // use here.
  process.env.POLAR_EMULATOR_URL ??= polarUrl;
  const { freePort, relayUnderWorkerd, storeWorker } = await import('./workerd.mjs');
  const worker = storeWorker(`perIp: '0', perKey: '0', signEntitlements: true, recordUsage: true, refuseAtZeroCredits: ${rule},
  store: { reconcileEvery: 0, webhookSecret: env.POLAR_WEBHOOK_SECRET || undefined },`);
  return relayUnderWorkerd({
    port: await freePort(),
    worker,
    polarUrl,
    bindings: { POLAR_ACCESS_TOKEN: TOKEN, RELAY_SIGNING_KEY: readFileSync(keyFile, 'utf8').trim(), ...secret },
    store: { dir: await mkdtemp(join(scratch, 'do-')), uniqueKey: `${name}${rule ? '-rule' : ''}` },
    probe: VALIDATE,
  });
}
