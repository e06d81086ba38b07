// The Polar side of the seller table's values rows (issue #68, "Done when" 1st bullet;
// tests/vectors/seller-rows.json, the rows with `"world": "values"`), one per face and relay host,
// shared by every face's runner so that each face plays only its own calls:
//
//   node tests/js/values-world.mjs HOST [--http]     (HOST: native | workers)
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
// With --http (the Rust-on-wasm runner: scripts/test-wasm.sh starts it), the hello and the steps
// go over HTTP instead (see `controlled` below).
//
// Polar's steps: change_flag {metadata} (benefit.updated), revoke_flag {key} (the grant
// revoked), lifecycle {key: a case} (the case as Polar runs it, its webhooks in Polar's order),
// resume {key} (the paused subscription resumed), polar_down, polar_up, consumed {key} (the units
// Polar counted of the key's customer, once they stop changing: `consumed:N`).
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  CASES, CREDIT, EVENT, EVENTS, LICENSE, METER, RESUMES_AT, TOKEN, VALUES, emulatorArgs, keygen, relayOn, served, uuid,
} from './values-polar.mjs';

const CLI = process.env.POLAR_CLI;
const HOST = process.argv[2];
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
const FLAG = '0a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c01';
const CREDITS = ['free', 'rule', 'outage'];
/** A key per use. */
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

// --http (the Rust-on-wasm runner, which starts no process and reads no pipe: scripts/test-wasm.sh
// starts the world): the steps over HTTP on loopback instead of stdin. It prints one line,
// `control URL`; `GET URL/hello` answers the hello's JSON, `POST URL/step` (a step's JSON) its
// answer; CORS open (a browser page's origin differs). It ends on SIGTERM or SIGINT, stopping
// what it started.
const HTTP = process.argv.includes('--http');
let hello;
async function controlled(answer) {
  const { createServer } = await import('node:http');
  const cors = { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'content-type', 'access-control-allow-methods': 'GET, POST' };
  let queue = Promise.resolve();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const reply = (status, value) => {
        res.writeHead(status, { 'content-type': 'application/json', ...cors });
        res.end(JSON.stringify(value));
      };
      if (req.method === 'OPTIONS') return reply(204, null);
      if (req.method === 'GET' && req.url === '/hello') return reply(200, hello);
      if (req.method === 'POST' && req.url === '/step') {
        // One step at a time, in the order they came, as over stdin.
        queue = queue.then(() => answer(body).then((a) => reply(200, a)));
        return undefined;
      }
      return reply(404, { error: `not a route: ${req.method} ${req.url}` });
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  console.log(`control http://127.0.0.1:${server.address().port}`);
  await new Promise((r) => {
    process.once('SIGTERM', r);
    process.once('SIGINT', r);
  });
  server.close();
}

async function main() {
  if (!CLI) throw new Error('POLAR_CLI is not set: the native command line runs the emulator');
  if (HOST !== 'native' && HOST !== 'workers') throw new Error(`HOST is native or workers, not ${HOST}`);
  const scratch = await mkdtemp(join(tmpdir(), 'polar-license-values-world-'));
  const closing = [];
  writeFileSync(join(scratch, 'seed.json'), JSON.stringify(seed()));
  const polarArgs = emulatorArgs(scratch);
  polar = await served([...polarArgs, '--port', '0'], { home: scratch, ready: null });
  const { keyFile, pair } = await keygen(scratch);

  if (HOST === 'workers') {
    if (!process.env.CONSUMER) throw new Error('the workers host needs CONSUMER (the installed npm package)');
    // tests/js/workerd.mjs reads tests/js/emulator.mjs, which asks for an emulator URL it
    // does not use here.
    process.env.POLAR_EMULATOR_URL ??= polar.url;
    const { WORKERD } = await import('./workerd.mjs');
    if (!existsSync(WORKERD)) throw new Error(`no workerd at ${WORKERD}`);
  }
  const relay = (rule, endpoint) => relayOn(HOST, { polarUrl: polar.url, scratch, keyFile, endpoint, rule, name: 'polar-values-world' });
  const endpoint = await control('POST', '/v1/webhooks/endpoints', { url: 'http://127.0.0.1:9/later', format: 'raw', events: EVENTS });
  const plain = await relay(false, endpoint);
  closing.push(plain);
  await control('PATCH', `/v1/webhooks/endpoints/${endpoint.id}`, { url: `${plain.url}/v1/webhooks/polar` });
  const rule = await relay(true, null);
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
  hello = { host: HOST, org: ORG, pair, relays, keys: KEYS, meter: EVENT };
  if (flat) {
    console.log(`org\t${ORG}\npair\t${pair}\nmeter\t${EVENT}`);
    for (const [name, url] of Object.entries(relays)) console.log(`relay\t${name}\t${url}`);
    for (const [name, key] of Object.entries(KEYS)) console.log(`key\t${name}\t${key}`);
    console.log('ready');
  } else if (!HTTP) {
    console.log(JSON.stringify({ host: HOST, org: ORG, pair, relays, keys: KEYS, meter: EVENT }));
  }
  const answer = async (line) => {
    try {
      const step = JSON.parse(line);
      const play = steps[step.do];
      if (!play) throw new Error(`not a Polar step: ${step.do}`);
      const got = await play(step);
      return got?.got ? got : { ok: true };
    } catch (e) {
      return { error: String(e?.message ?? e) };
    }
  };
  if (HTTP) {
    await controlled(answer);
  } else {
    for await (const line of createInterface({ input: process.stdin })) {
      if (line.trim()) say(await answer(line));
    }
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
