// The seller's rows (issue #54, "Done when" 2nd bullet) through the packed npm package: every row
// of tests/vectors/seller-rows.json played with LicenseClient against an emulator process of the
// row's own (the package's `polar-license-emulator`, seeded with the row's key: its benefit,
// expiry and 2027-01 subscription; never the shared emulator of the other suites, since a row
// moves Polar's clock with the global `POST /__emulator/clock`), the app's clock moved with the
// `clock` option as the other npm suites move it. Each verdict is rendered by
// tests/js/seller-rows.mjs exactly as the Rust faces render theirs, and the rows are written to
// target/seller-table/npm.tsv (face row expected got result, as rust.tsv), or
// $POLAR_SELLER_TABLE_DIR.
//
// scripts/test-wasm.sh runs it with the other node suites (`npm-node`; not under Node 18, whose
// run would write the same file), and scripts/seller-table.sh prints npm's column from the TSV
// (scripts/test.sh's `seller` stage, after the wasm stage). The test fails when a row fails,
// naming each failed step. By hand, after scripts/test-wasm.sh has installed the tarball:
//
//   CONSUMER=target/npm/consumer node --test tests/js/seller-table.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createServer } from 'node:http';
import { PACKAGE_DIR, importAsApp, mapStorage, pkg, relaySigningKey, started, stop } from './emulator.mjs';
import { PAID_BENEFIT, TRIAL_BENEFIT, expected, render, rows } from './seller-rows.mjs';
import { playValuesRow, renderValue, startWorld } from './values-rows.mjs';
import { WORKERD } from './workerd.mjs';

const { LicenseClient } = await pkg();
const { Devices, DevicesError } = await import(pathToFileURL(join(PACKAGE_DIR, 'devices.js')).href);
const { recordUsage } = await import(pathToFileURL(join(PACKAGE_DIR, 'usage.js')).href);

const DAY = 86400;
const ORG = '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10';
const KEY = 'SELLER-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A';
const iso = (s) => new Date(s * 1000).toISOString().replace('.000Z', 'Z');
const seconds = (day) => Math.round(day * DAY);
const dayOf = (d) => (d == null ? null : seconds(d));
// Devices rows (issue #64): the key's customer, and a benefit with device management on.
const DEVICES_EMAIL = 'jane.doe@gmail.com';
const DEVICES_BENEFIT = '5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d';
const RELAY_TOKEN = 'polar_oat_emulator_demo_0123456789abcdef';
const isDevicesRow = (row) =>
  row.steps.some((s) => s.do === 'sign_in' || s.do === 'elsewhere' || s.do === 'request_codes');

/** The row's Polar: an emulator process of its own, seeded with the row's key. */
async function emulator(row, start, dir) {
  const p = row.polar;
  const key = { key: KEY, customer_id: '5d3c2b1a-1e2f-4a3b-8c4d-5e6f7a8b9c0d', limit_activations: p.limit_activations ?? 3 };
  const benefits = [];
  if (isDevicesRow(row)) {
    Object.assign(key, { customer_email: DEVICES_EMAIL, benefit_id: DEVICES_BENEFIT });
    benefits.push({ id: DEVICES_BENEFIT, enable_customer_admin: p.customer_admin !== false });
  }
  if (p.benefit === 'trial') key.benefit_id = TRIAL_BENEFIT;
  if (p.benefit === 'paid') key.benefit_id = PAID_BENEFIT;
  if (p.expires_day != null) key.expires_at = iso(start + seconds(p.expires_day));
  if (p.subscription) {
    const s = p.subscription;
    const at = (d) => (d == null ? undefined : iso(start + seconds(d)));
    key.subscription = {
      status: s.status,
      current_period_end: at(s.period_end_day),
      cancel_at_period_end: !!s.cancel_at_period_end,
      ends_at: at(s.ends_day),
    };
  }
  const seed = join(dir, 'seed.json');
  // The organization token the seller's relay reads the key's devices with (a devices_relay row).
  const access_tokens = row.steps.some((s) => s.do === 'devices_relay') ? [{ token: RELAY_TOKEN }] : [];
  writeFileSync(seed, JSON.stringify({ organization_id: ORG, license_keys: [key], benefits, access_tokens }));
  const bin = join(PACKAGE_DIR, 'emulator-cli.js');
  const args = [bin, '--port', '0', '--seed', seed, '--api-version', p.api || '2026-10'];
  return started(process.execPath, args, 1);
}

/**
 * The seller's relay (the package's `polar-license/relay` in node) in front of the row's Polar at
 * `base`, when a step lists through it (`devices_relay`): its URL and its server, else null.
 */
async function relayFor(row, base) {
  if (!row.steps.some((s) => s.do === 'devices_relay')) return null;
  const relayPkg = await importAsApp('relay-import-seller.mjs', 'polar-license/relay');
  const relay = relayPkg.createRelay({
    accessToken: RELAY_TOKEN,
    signingKey: relaySigningKey('seller-js').text,
    baseUrl: base,
  });
  const server = createServer(relayPkg.createNodeListener(relay));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, server };
}

/** A check's answer (or rejection) in the table's vocabulary, times from `start`. */
function verdict(row, got, start) {
  const app = row.app || {};
  const v = {};
  if (got instanceof Error) {
    const t = got.trial;
    v.verdict = t && t.local && t.state === 'active' ? 'trial' : (got.code ?? String(got));
  } else {
    v.verdict = 'licensed';
    v.source = got.source;
  }
  // As the Rust runner reads the report: no perpetual answer is no fallback, no end known.
  if (app.released_day != null) {
    v.fallback = [got.fallback === true, got.paidThrough == null ? null : got.paidThrough - start];
  }
  if (app.trial_days != null || app.trial_benefit) {
    const t = got.trial;
    v.trial = t == null
      ? null
      : { local: t.local, state: t.state, days_left: t.daysLeft, ends: t.endsAt == null ? null : t.endsAt - start };
  }
  return v;
}

async function post(base, path, body, method = 'POST') {
  const resp = await fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${await resp.text()}`);
}

/** Plays `row`: `{ id, expected, got, failures }`, as the Rust runners find a row. */
async function play(row) {
  const start = Math.floor(Date.now() / 1000);
  const dir = mkdtempSync(join(tmpdir(), `seller-${row.id}-`));
  const found = { id: row.id, expected: '', got: '', failures: [] };
  let polar;
  let relay;
  try {
    polar = await emulator(row, start, dir);
    const base = polar.url;
    // Polar's per-address limits for the row (the emulator's, turned on as on a shared one).
    if (row.polar.rate_limit) await post(base, '/__emulator/rate-limit', { enabled: true });
    relay = await relayFor(row, base);
    const app = row.app || {};
    let offset = 0;
    const options = {
      organizationId: ORG,
      baseUrl: base,
      storage: mapStorage(),
      machineId: 'machine-A',
      timeout: 10,
      clock: () => (start + offset) * 1000,
    };
    if (app.released_day != null) options.released = new Date((start + app.released_day * DAY) * 1000).toISOString().slice(0, 10);
    if (app.trial_days != null) options.trial = app.trial_days;
    if (app.trial_benefit) options.trialBenefit = TRIAL_BENEFIT;
    const client = new LicenseClient(options);
    const moveTo = async (day) => {
      offset = seconds(day);
      await post(base, '/__emulator/clock', { offset_seconds: offset });
    };
    const cellAt = row.steps.findIndex((s) => s.cell);
    const compare = (i, step, got) => {
      const want = expected(step);
      if (!want) return;
      const [w, g] = [render(want), render(got)];
      if (w !== g) found.failures.push(`step ${i}: expected \`${w}\`, got \`${g}\``);
      if (cellAt === -1 || cellAt === i) [found.expected, found.got] = [w, g];
    };
    // Devices rows: the package's polar-license/devices (its session in memory) and this
    // machine's activation as the app knows it (from its activate).
    const dev = new Devices({ organizationId: ORG, baseUrl: base });
    let hereId = null;
    // Through the seller's relay: no session, the key proves it is the customer's.
    const viaRelay = relay && new Devices({ organizationId: ORG, baseUrl: base, relay: relay.url });
    const listed = async (through = dev) => {
      try {
        const d = await through.list(KEY, { activationId: hereId });
        return `devices:${d.devices.length},this:${d.devices.some((x) => x.thisMachine) ? 'marked' : 'unmarked'}`;
      } catch (e) {
        return e.code ?? String(e);
      }
    };
    for (const [i, step] of row.steps.entries()) {
      if (step.do === 'elsewhere') {
        await post(base, '/v1/customer-portal/license-keys/activate', { key: KEY, organization_id: ORG, label: step.label });
        continue;
      }
      if (step.do === 'try_activate') {
        let got;
        try {
          hereId = (await client.activate(KEY, { label: 'This laptop' })).activation.id;
          got = 'activated';
        } catch (e) {
          got = e.code ?? String(e);
        }
        compare(i, step, { verdict: got });
        continue;
      }
      if (step.do === 'sign_in') {
        await dev.requestCode(DEVICES_EMAIL);
        const r = await fetch(`${base}/__emulator/customer-session/codes`);
        const { codes } = await r.json();
        await dev.signIn(codes.filter((c) => c.email === DEVICES_EMAIL).at(-1).code);
        continue;
      }
      if (step.do === 'devices') {
        compare(i, step, { verdict: await listed() });
        continue;
      }
      if (step.do === 'request_codes') {
        // Codes asked for until Polar refuses: sent:N, then the refusal's code and, for
        // rate_limited, the wait the error gives (`?` none).
        let sent = 0;
        let refused = null;
        for (let k = 0; k < step.times && !refused; k++) {
          try {
            await dev.requestCode(DEVICES_EMAIL);
            sent++;
          } catch (e) {
            refused = e;
          }
        }
        let got = `sent:${sent}`;
        if (refused) {
          got += `,${refused.code ?? String(refused)}`;
          if (refused.code === 'rate_limited') got += `:wait=${refused.retryAfter ?? '?'}`;
        }
        compare(i, step, { verdict: got });
        continue;
      }
      if (step.do === 'polar_clock') {
        // Polar's clock alone (the app's stays); the devices steps do not move it back.
        await post(base, '/__emulator/clock', { offset_seconds: seconds(step.day) });
        continue;
      }
      if (step.do === 'recover') {
        // "I lost my key": the customer's keys through the session; the one whose display form
        // is the row's key's (****-last six) activated here (the whole key only into it).
        let got;
        try {
          const lost = (await dev.recover()).find((k) => k.displayKey.toUpperCase().endsWith(KEY.slice(-6).toUpperCase()));
          if (!lost) got = 'unlisted';
          else {
            try {
              hereId = (await client.activate(lost.key, { label: 'Recovered here' })).activation.id;
              got = 'recovered:activated';
            } catch (e) {
              got = `recovered:${e.code ?? e}`;
            }
          }
        } catch (e) {
          got = e.code ?? String(e);
        }
        compare(i, step, { verdict: got });
        continue;
      }
      if (step.do === 'devices_relay') {
        compare(i, step, { verdict: await listed(viaRelay) });
        continue;
      }
      if (step.do === 'free_other') {
        const d = await dev.list(KEY, { activationId: hereId });
        const other = d.devices.find((x) => !x.thisMachine);
        if (!other) found.failures.push(`step ${i}: no other device`);
        else await dev.free(KEY, other.id);
        continue;
      }
      if (step.do === 'rotate') {
        // The customer rotates the key at Polar (the emulator's rotate: record id, limits and
        // activations kept, the old string 404 at once).
        await post(base, `/__emulator/keys/${KEY}/rotate`, {});
        continue;
      }
      if (step.do === 'follow_rotation') {
        // The rotated key followed through the session with the row's client (its cache holds
        // the old string's license and this machine's activation), then the new string checked
        // as the app would: licensed from the record the follow wrote.
        let got;
        try {
          const followed = await dev.followRotation(client, { key: KEY });
          // Kept: the follow validated with this machine's activation and the new string's
          // record remembers it (the client's next check carries it).
          let kept = hereId !== null && followed.activationId === hereId;
          let state;
          try {
            const checked = await client.check(followed.key);
            kept &&= checked.activation?.id === hereId;
            state = 'licensed';
          } catch (e) {
            state = e.code ?? String(e);
          }
          got = `followed:${state},activation:${kept ? 'kept' : 'changed'}`;
        } catch (e) {
          // Polar's denial of the new string (its status), else the follow's typed failure.
          got = e instanceof DevicesError && e.status !== undefined ? `followed:${e.code},activation:changed` : (e.code ?? String(e));
        }
        compare(i, step, { verdict: got });
        continue;
      }
      if (step.do === 'offline') {
        await post(base, '/__emulator/fault', { kind: 'close_immediately' });
        continue;
      }
      await moveTo(step.day);
      if (step.do === 'activate') {
        try {
          await client.activate(KEY, { label: 'laptop' });
        } catch (e) {
          found.failures.push(`step ${i}: activate: ${e.code}: ${e.message}`);
        }
        continue;
      }
      if (step.do === 'revoke') {
        await post(base, `/__emulator/keys/${KEY}`, { status: 'revoked' }, 'PATCH');
        continue;
      }
      // check (a key) or trial (no key: the local trial).
      let got;
      try {
        got = await client.check(step.do === 'trial' ? undefined : KEY);
      } catch (e) {
        got = e;
      }
      compare(i, step, verdict(row, got, start));
    }
  } catch (e) {
    found.failures.push(`the row could not be played: ${e.stack ?? e}`);
  } finally {
    if (relay) await new Promise((resolve) => relay.server.close(resolve));
    if (polar) await stop(polar.child);
    rmSync(dir, { recursive: true, force: true });
  }
  return found;
}

/**
 * The values rows (issue #68) on `host`'s relay, in order on one tests/js/values-world.mjs:
 * the package's LicenseClient in signed mode (the relay's key), a client a relay, every check
 * asking it; its `entitlement(name)`, `polar-license/usage`'s `recordUsage` (signed: `relayKeys`), a rejection's
 * typed `stopped`.
 */
async function playValues(host) {
  const world = await startWorld(host);
  const clients = new Map();
  const client = (url) => {
    if (!clients.has(url)) {
      clients.set(url, new LicenseClient({ organizationId: world.org, baseUrl: url, storage: mapStorage(), relayKeys: [world.pair], gracePolicy: { revalidateAfter: 0 } }));
    }
    return clients.get(url);
  };
  const face = {
    async value(url, key, name) {
      await client(url).check(key).catch(() => {});
      return renderValue(client(url).entitlement(name));
    },
    async relayCheck(url, key) {
      try {
        await client(url).check(key);
        return 'licensed';
      } catch (e) {
        if (!e.stopped) return e.code ?? String(e);
        return `${e.code} · ${e.stopped.kind}${e.stopped.until == null ? '' : ` until=${e.stopped.until}`}`;
      }
    },
    async usage(url, key, meter, units, id) {
      try {
        // Signed mode, as the other faces' runners (issue #76): the answer only from the
        // relay's signed acknowledgement.
        const r = await recordUsage({ organizationId: world.org, relay: url, key, meter, units, id, relayKeys: [world.pair] });
        if (!r.signed) return 'unsigned';
        return `${r.duplicate ? 'duplicate' : 'recorded'} balance:${r.balance ?? '?'}`;
      } catch (e) {
        return e.code === 'credits_exhausted' ? `${e.code} balance:${e.balance ?? '?'}` : (e.code ?? String(e));
      }
    },
  };
  try {
    const found = [];
    for (const row of rows().filter((r) => r.world === 'values' && r.hosts.includes(host))) found.push(await playValuesRow(row, world, face));
    return found;
  } finally {
    await world.close();
  }
}

// The Workers relay where workerd is (scripts/npm's); the native relay with the command line.
const valuesHosts = process.env.POLAR_CLI ? ['native', ...(existsSync(WORKERD) ? ['workers'] : [])] : [];

test('every seller row through the packed package (target/seller-table/npm.tsv)', async () => {
  const [plain, ...values] = await Promise.all([Promise.all(rows().filter((r) => !r.world).map(play)), ...valuesHosts.map(playValues)]);
  const all = [...plain, ...values.flat()];
  let tsv = 'face\trow\texpected\tgot\tresult\n';
  const failures = [];
  for (const f of all) {
    const pass = f.failures.length === 0 && f.expected !== '';
    tsv += `npm\t${f.id}\t${f.expected}\t${f.got}\t${pass ? 'pass' : 'FAIL'}\n`;
    for (const why of f.failures) failures.push(`${f.id}: ${why}`);
    if (f.expected === '') failures.push(`${f.id}: no expected check`);
  }
  const dir = process.env.POLAR_SELLER_TABLE_DIR || fileURLToPath(new URL('../../target/seller-table/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'npm.tsv'), tsv);
  assert.ok(all.length >= 11, `the table lost rows: ${all.length}`);
  assert.deepEqual(failures, [], `npm: seller table failures:\n${failures.join('\n')}`);
});
