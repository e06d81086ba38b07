#!/usr/bin/env node
// `npx polar-license-emulator [--port N] [--host H] [--seed FILE] [--rate-limit] [--sandbox]
// [--api-version YYYY-MM] [--api-versions LIST] [--token-budget N] [--token-window SECONDS]
// [--webhook-time-scale FACTOR] [--webhook-timeout SECONDS]`: the local Polar of
// `polar-license/emulator`, serving until killed. It prints the banner of `polar-license
// emulator` (the Rust command line): `listening on URL` first, then the organization, each key
// with its benefit id, each access token.
import { readFileSync } from 'node:fs';
import { startEmulator } from './emulator.js';

const USAGE = `usage: polar-license-emulator [--port N] [--host ADDRESS] [--seed FILE] [--rate-limit]
                              [--sandbox] [--api-version YYYY-MM] [--api-versions LIST]
                              [--token-budget N] [--token-window SECONDS]
                              [--webhook-time-scale FACTOR] [--webhook-timeout SECONDS]
  --port N        the port on 127.0.0.1 (default 8787; 0 picks a free one)
  --host ADDRESS  the address to listen on (default 127.0.0.1)
  --seed FILE     a seed file (JSON: organization, keys, tokens); default the demo seed
  --rate-limit    Polar's rate limit: 3 requests per second, then a 60 s block
  --sandbox       behave like Polar's sandbox (X-Polar-Sandbox: 1; a token budget of 100)
  --api-version YYYY-MM     the Polar-Version answered when a request sends none
                            (default: Polar's current one)
  --api-versions LIST       the Polar-Versions served, comma-separated; any other (a removed
                            one) answers a bare 404 (default: 2026-04,2026-10,2027-01)
  --token-budget N          an organization's token calls per window (default: the seed's
                            token_budget, else 500, or 100 with --sandbox; 0: off)
  --token-window SECONDS    the token budget's window (default: the seed's
                            token_window_seconds, else 60)
  --webhook-time-scale FACTOR   scales Polar's webhook retry schedule (ten tries: at once,
                                then 2 s doubling with jitter, capped at 20 min; default 1;
                                0.01 turns 2 s into 20 ms)
  --webhook-timeout SECONDS     how long one webhook delivery attempt may take (default 10)`;

function fail(why) {
  process.stderr.write(`error: ${why}\n${USAGE}\n`);
  process.exit(2);
}

const options = { port: 8787 };
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  let [name, value] = args[i].split(/=(.*)/s);
  const takes = [
    '--port',
    '--host',
    '--seed',
    '--api-version',
    '--api-versions',
    '--token-budget',
    '--token-window',
    '--webhook-time-scale',
    '--webhook-timeout',
  ].includes(name);
  if (!takes && value !== undefined) fail(`${name} takes no value`);
  if (takes && value === undefined) {
    value = args[++i];
    if (value === undefined) fail(`${name} needs a value`);
  }
  switch (name) {
    case '--port': {
      const port = Number(value);
      if (!/^\d+$/.test(value) || port > 65535) fail(`--port: not a port: ${value}`);
      options.port = port;
      break;
    }
    case '--host':
      options.host = value;
      break;
    case '--seed':
      try {
        options.seed = readFileSync(value, 'utf8');
      } catch (e) {
        fail(`cannot read seed file ${value}: ${e.message}`);
      }
      break;
    case '--rate-limit':
      options.rateLimit = true;
      break;
    case '--sandbox':
      options.sandbox = true;
      break;
    // Taken as given, as by `polar-license emulator`: the emulator refuses a default it does
    // not serve.
    case '--api-version':
      options.apiVersion = value;
      break;
    case '--api-versions':
      options.apiVersions = value.split(',');
      break;
    case '--token-budget':
      if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) {
        fail(`--token-budget: not a count: ${value}`);
      }
      options.tokenBudget = Number(value);
      break;
    case '--token-window':
      if (!/^[1-9]\d*$/.test(value)) fail(`--token-window: not a number of seconds: ${value}`);
      options.tokenWindowMs = Number(value) * 1000;
      break;
    case '--webhook-time-scale': {
      const scale = Number(value);
      if (!/^\s*\S/.test(value) || !Number.isFinite(scale) || scale <= 0) {
        fail(`--webhook-time-scale: not a number above 0: ${value}`);
      }
      options.webhookTimeScale = scale;
      break;
    }
    case '--webhook-timeout': {
      const seconds = Number(value);
      const ms = Math.round(seconds * 1000);
      if (!/^\s*\S/.test(value) || !Number.isFinite(seconds) || ms < 1) {
        fail(`--webhook-timeout: not a positive number of seconds: ${value}`);
      }
      options.webhookTimeoutMs = ms;
      break;
    }
    case '-h':
    case '--help':
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
      break;
    default:
      fail(`unknown argument ${args[i]}`);
  }
}

let polar;
try {
  polar = await startEmulator(options);
} catch (e) {
  if (e && e.code) {
    process.stderr.write(`error: cannot listen on ${options.host ?? '127.0.0.1'}:${options.port}: ${e.message}\n`);
    process.exit(3);
  }
  const why = e && e.message ? e.message : String(e);
  // The emulator's own words for a default version it does not serve; anything else is the seed.
  fail(/API version/.test(why) ? why : `bad seed: ${why}`);
}
const first = polar.keys[0] ?? 'KEY';
let text = `listening on ${polar.url}\norganization ${polar.organizationId}\n${polar.banner}`;
text += `try: new LicenseClient({ organizationId: '${polar.organizationId}', baseUrl: '${polar.url}' }).validate('${first}')\n`;
if (options.rateLimit) text += 'rate limit on: 3 requests per second, then a 60 s block\n';
const budget = polar.tokenBudget();
text +=
  budget.calls === 0
    ? 'token budget off\n'
    : `token budget: ${budget.calls} calls per ${budget.windowMs / 1000}s per organization (429 past it)\n`;
text += 'serving until killed (Ctrl-C)\n';
process.stdout.write(text);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    polar.close().then(() => process.exit(0));
  });
}
