// The Polar side of the seller table's values rows (issue #68, "Done when" 1st bullet;
// tests/vectors/seller-rows.json, the rows with `"world": "values"`), one per face and relay host,
// shared by every face's runner so that each face plays only its own calls:
//
//   node tests/js/values-world.mjs HOST      (HOST: native | workers)
//
// It starts `polar-license emulator` (POLAR_CLI, its state in a file: `polar_down` stops it,
// `polar_up` starts it again on its port) seeded with a Feature Flag benefit, a meter with a
// credit benefit of 10 units and a key per use; on HOST two relays in front of it, signing the
// values into the leases and taking usage (`relay serve --sign-entitlements --record-usage`, or
// the npm package's relay under workerd: CONSUMER's installed package, scripts/npm's workerd),
// the second with the seller's rule (`--refuse-at-zero-credits`), the first with a webhook
// endpoint at the emulator (its webhooks sent at once). It prints one JSON line:
//
//   {"host", "org", "pair" (the relay's public key, for signed mode), "relays": {"plain", "rule"},
//    "keys": {flag, free, rule, outage, paused, canceled, past_due, seat_revoked, refunded, rotated},
//    "meter" (the event name the meter counts)}
//
// (VALUES_WORLD_FLAT=1: as tab-separated lines, for the C runner), then reads the rows' Polar steps, one JSON object a line on stdin, and answers each with one
// line: {"ok": true} or, for a step that reads Polar (`consumed`), {"got": "..."}; a step it
// cannot play is answered {"error": "..."}. It ends when stdin closes, stopping what it started.
//
// Polar's steps: change_flag {metadata} (benefit.updated), revoke_flag {key} (the grant
// revoked), lifecycle {key: a case} (the case as Polar runs it, its webhooks in Polar's order),
// resume {key} (the paused subscription resumed), polar_down, polar_up, consumed {key} (the units
// Polar counted of the key's customer, once they stop changing: `consumed:N`).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const CLI = process.env.POLAR_CLI;
const HOST = process.argv[2];
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
const TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const VALIDATE = '/v1/customer-portal/license-keys/validate';
const LICENSE = '3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d';
const FLAG = '0a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c01';
const METER = '4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e';
const CREDIT = '6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a';
const EVENT = 'tokens_used';
const RESUMES_AT = '2031-06-03T00:00:00Z';
export const VALUES = { max_upload_size: 10, role: 'editor', ratio: 1.5, beta: true };
const CASES = ['paused', 'canceled', 'past_due', 'seat_revoked', 'refunded', 'rotated'];
const CREDITS = ['free', 'rule', 'outage'];
const EVENTS = [
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

/** A UUID v4 whose last two hex digits are `n`, of family `f` (one hex digit). */
const uuid = (f, n) => `${f}a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c${n.toString(16).padStart(2, '0')}`;
const KEYS = {
  flag: 'VAL-FLAG-1B2C3D',
  ...Object.fromEntries(CREDITS.map((c) => [c, `USE-${c.toUpperCase()}-7A8B`])),
  ...Object.fromEntries(CASES.map((c) => [c, `LIFE-${c.toUpperCase().replace('_', '')}-4E5F`])),
};

function seed() {
  const key = (name, n, more) => ({ key: KEYS[name], benefit_id: LICENSE, customer_id: uuid('6', n), ...more });
  const sub = (n) => ({ subscription: { id: uuid('9', n) } });
  const keys = [
    key('flag', 0, { ...sub(0), benefits: [FLAG] }),
    key('paused', 1, sub(1)),
    key('canceled', 2, sub(2)),
    key('past_due', 3, sub(3)),
    key('seat_revoked', 4, { ...sub(4), member: { id: uuid('3', 4), email: 'seat@example.com' } }),
    key('refunded', 5, { order: { id: uuid('1', 5) } }),
    key('rotated', 6, {}),
    // Each credits key a customer of its own (a balance each), the flag too (its values read
    // first tell the relay has read the customer, meters included).
    ...CREDITS.map((c, i) => key(c, 16 + i, { ...sub(16 + i), benefits: [CREDIT, FLAG] })),
  ];
  return {
    organization_id: ORG,
    access_tokens: [{ token: TOKEN, organization_id: ORG }],
    benefits: [
      { id: FLAG, type: 'feature_flag', metadata: VALUES },
      { id: CREDIT, type: 'meter_credit', meter_id: METER, units: 10 },
    ],
    meters: [{ id: METER, name: 'Tokens', event_name: EVENT, aggregation: { func: 'sum', property: 'units' } }],
    license_keys: keys,
  };
}

/** `polar-license ARGS` until it prints its URL (and `ready`), as tests/js/emulator.mjs's `served`. */
function served(args, { home, env = {}, ready = 'serving until killed' } = {}) {
  const child = spawn(CLI, args, { env: { PATH: process.env.PATH, HOME: home, XDG_DATA_HOME: home, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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
      reject(new Error(`${args.join(' ')} exited (${code}): ${stderr}`));
    });
  });
}

let polar;
/** A call to the emulator with the organization token; throws on a status of 300 or above. */
async function control(method, path, body) {
  const r = await fetch(`${polar.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const sub = (key, action, more = {}) => control('POST', `/__emulator/keys/${key}/subscription`, { action, ...more });
const LIFECYCLE = {
  paused: async (key) => {
    await sub(key, 'pause_at_period_end', { resumes_at: RESUMES_AT });
    await sub(key, 'period_end');
  },
  canceled: async (key) => {
    await sub(key, 'cancel_at_period_end');
    await sub(key, 'period_end');
  },
  past_due: (key) => sub(key, 'past_due', { grace_days: 0 }),
  seat_revoked: (key) => control('POST', `/__emulator/keys/${key}/seat/revoke`),
  refunded: (key) => control('POST', `/__emulator/keys/${key}/refund`, { revoke_benefits: true }),
  rotated: (key) => control('POST', `/__emulator/keys/${key}/rotate`),
};

/** The units Polar counted of `key`'s customer. */
async function consumed(key) {
  const customer = seed().license_keys.find((k) => k.key === key).customer_id;
  const { items } = await control('GET', `/v1/customer-meters/?customer_id=${customer}`);
  return items.find((m) => m.meter_id === METER)?.consumed_units ?? 0;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  if (!CLI) throw new Error('POLAR_CLI is not set: the native command line runs the emulator');
  if (HOST !== 'native' && HOST !== 'workers') throw new Error(`HOST is native or workers, not ${HOST}`);
  const scratch = await mkdtemp(join(tmpdir(), 'polar-license-values-world-'));
  const closing = [];
  const seedFile = join(scratch, 'seed.json');
  writeFileSync(seedFile, JSON.stringify(seed()));
  const polarArgs = ['emulator', '--seed', seedFile, '--state', join(scratch, 'polar-state.json'), '--webhook-time-scale', '0.0001'];
  polar = await served([...polarArgs, '--port', '0'], { home: scratch, ready: null });
  const keyFile = join(scratch, 'relay.key');
  const keygen = spawn(CLI, ['relay', 'keygen', '--out', keyFile], { stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: process.env.PATH, HOME: scratch } });
  let pair = '';
  keygen.stdout.on('data', (d) => (pair += d));
  if ((await new Promise((r) => keygen.once('exit', r))) !== 0) throw new Error('relay keygen failed');
  pair = pair.trim();

  let workerd;
  if (HOST === 'workers') {
    if (!process.env.CONSUMER) throw new Error('the workers host needs CONSUMER (the installed npm package)');
    // tests/js/workerd.mjs reads tests/js/emulator.mjs, which asks for an emulator URL it
    // does not use here.
    process.env.POLAR_EMULATOR_URL ??= polar.url;
    workerd = await import('./workerd.mjs');
    if (!existsSync(workerd.WORKERD)) throw new Error(`no workerd at ${workerd.WORKERD}`);
  }
  async function relayOn(rule, endpoint) {
    if (HOST === 'native') {
      const args = ['--base-url', polar.url, 'relay', 'serve', '--signing-key', keyFile, '--port', '0', '--per-ip', '0', '--per-key', '0',
        '--store', 'memory', '--reconcile-every', '0', '--sign-entitlements', '--record-usage', ...(rule ? ['--refuse-at-zero-credits'] : [])];
      return served(args, { home: scratch, env: { POLAR_ACCESS_TOKEN: TOKEN, ...(endpoint ? { POLAR_WEBHOOK_SECRET: endpoint.secret } : {}) } });
    }
    const worker = workerd.storeWorker(`perIp: '0', perKey: '0', signEntitlements: true, recordUsage: true, refuseAtZeroCredits: ${rule},
  store: { reconcileEvery: 0, webhookSecret: env.POLAR_WEBHOOK_SECRET || undefined },`);
    return workerd.relayUnderWorkerd({
      port: await workerd.freePort(),
      worker,
      polarUrl: polar.url,
      bindings: { POLAR_ACCESS_TOKEN: TOKEN, RELAY_SIGNING_KEY: readFileSync(keyFile, 'utf8').trim(), ...(endpoint ? { POLAR_WEBHOOK_SECRET: endpoint.secret } : {}) },
      store: { dir: await mkdtemp(join(scratch, 'do-')), uniqueKey: `polar-values-world${rule ? '-rule' : ''}` },
      probe: VALIDATE,
    });
  }
  const endpoint = await control('POST', '/v1/webhooks/endpoints', { url: 'http://127.0.0.1:9/later', format: 'raw', events: EVENTS });
  const plain = await relayOn(false, endpoint);
  closing.push(plain);
  await control('PATCH', `/v1/webhooks/endpoints/${endpoint.id}`, { url: `${plain.url}/v1/webhooks/polar` });
  const rule = await relayOn(true, null);
  closing.push(rule);

  const port = new URL(polar.url).port;
  const steps = {
    change_flag: (s) => control('PATCH', `/__emulator/benefits/${FLAG}`, { metadata: s.metadata }),
    revoke_flag: (s) => control('PATCH', `/__emulator/keys/${KEYS[s.key]}/benefits/${FLAG}`, { is_granted: false }),
    lifecycle: (s) => LIFECYCLE[s.key](KEYS[s.key]),
    resume: (s) => sub(KEYS[s.key], 'resume'),
    polar_down: async () => {
      await polar.close();
      polar = null;
      // Polar unreachable a while: each relay tries its batch, keeps it, tries again later.
      await sleep(1_200);
    },
    polar_up: async () => {
      polar = await served([...polarArgs, '--port', port], { home: scratch, ready: null });
    },
    // Polar's count, once it stops changing: read until it has not moved for 600 ms (a batch
    // comes within 200 ms of a report) and at most 10 s.
    consumed: async (s) => {
      const start = Date.now();
      let last = await consumed(KEYS[s.key]);
      let since = Date.now();
      const want = Number(/consumed:(\S+)/.exec(s.expect?.verdict ?? '')?.[1]);
      while (Date.now() - start < 10_000) {
        await sleep(100);
        const now = await consumed(KEYS[s.key]);
        if (now !== last) {
          last = now;
          since = Date.now();
        } else if (Date.now() - since >= 600 && (last === want || Date.now() - start > 3_000)) break;
      }
      return { got: `consumed:${last}` };
    },
  };

  // VALUES_WORLD_FLAT=1 (the C runner): the hello and the answers as tab-separated lines
  // (`org ORG`, `pair PAIR`, `meter M`, `relay NAME URL`, `key NAME KEY`, then `ready`; `ok`,
  // `got X`, `error E`).
  const flat = process.env.VALUES_WORLD_FLAT === '1';
  const say = (answer) => {
    if (!flat) return console.log(JSON.stringify(answer));
    if (answer.error) return console.log(`error\t${answer.error.replace(/\s+/g, ' ')}`);
    console.log(answer.got !== undefined ? `got\t${answer.got}` : 'ok');
  };
  const relays = { plain: plain.url, rule: rule.url };
  if (flat) {
    console.log(`org\t${ORG}\npair\t${pair}\nmeter\t${EVENT}`);
    for (const [name, url] of Object.entries(relays)) console.log(`relay\t${name}\t${url}`);
    for (const [name, key] of Object.entries(KEYS)) console.log(`key\t${name}\t${key}`);
    console.log('ready');
  } else {
    console.log(JSON.stringify({ host: HOST, org: ORG, pair, relays, keys: KEYS, meter: EVENT }));
  }
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    let answer;
    try {
      const step = JSON.parse(line);
      const play = steps[step.do];
      if (!play) throw new Error(`not a Polar step: ${step.do}`);
      answer = (await play(step)) ?? { ok: true };
      if (!answer.got) answer = { ok: true };
    } catch (e) {
      answer = { error: String(e?.message ?? e) };
    }
    say(answer);
  }
  for (const c of closing) await c.close().catch(() => {});
  await polar?.close();
  await rm(scratch, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (e) => {
    const error = String(e?.stack ?? e);
    console.log(process.env.VALUES_WORLD_FLAT === '1' ? `error\t${error.replace(/\s+/g, ' ')}` : JSON.stringify({ error }));
    process.exit(1);
  },
);
