// Issue #78 through the installed npm package in node: Polar's January 2027 rotation (2026-04
// removed, 2027-01 made current) in the middle of a run, through the emulator's control route
// (`POST /__emulator/api-versions`): validate and check give the same verdicts before and after.
// And the package names itself to Polar (`User-Agent: polar-license/<version> (node)`, as the
// native face sends `polar-license/<version> (rust)`: Polar's edge refuses some bare library
// agents), pinning no version: read back from `GET /__emulator/requests/seen`; the modules
// driven by drive.js (here polar-license/usage) send it too.
//
// Against an emulator of this file alone, started from the native command line (POLAR_CLI).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CLI, ORG, PACKAGE_DIR, README_KEY, REVOKED_KEY, mapStorage, pkg, rejection, served } from './emulator.mjs';

const { LicenseClient } = await pkg();
const { recordUsage } = await import(pathToFileURL(join(PACKAGE_DIR, 'usage.js')).href);
const VERSION = JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')).version;
const AGENT = `polar-license/${VERSION} (node)`;

if (!CLI) throw new Error('POLAR_CLI is not set: run scripts/test-wasm.sh');

let polar;
let url;

before(async () => {
  polar = await served(['emulator', '--port', '0'], { ready: null });
  url = polar.url;
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
});

after(() => polar?.close());

async function control(method, path, body) {
  const resp = await fetch(`${url}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return [resp.status, await resp.json()];
}

/** What the client reads of the two demo keys: validate's key, check's key and source (Polar
 * asked every time), the revoked key's error code. */
async function verdicts(client) {
  const validated = await client.validate(README_KEY);
  const checked = await client.check(README_KEY);
  const refused = await rejection(client.validate(REVOKED_KEY));
  return [validated.license.key, checked.license.key, checked.source, refused.code];
}

test('the rotation day changes no verdict, and every request is named and unpinned', async () => {
  const client = new LicenseClient({
    organizationId: ORG,
    baseUrl: url,
    storage: mapStorage(),
    gracePolicy: { revalidateAfter: 0 },
  });
  const before = await verdicts(client);
  assert.deepEqual(before.slice(0, 3), [README_KEY, README_KEY, 'online']);
  const [status, now] = await control('POST', '/__emulator/api-versions', {
    served: ['2026-10', '2027-01'],
    current: '2027-01',
  });
  assert.equal(status, 200, JSON.stringify(now));
  assert.deepEqual(await verdicts(client), before);
  // The bare 404 a build pinned to the removed version hears on every route: no verdict (the
  // grace cache answers), never not_found.
  const bare = { kind: 'respond', status: 404, headers: [['content-type', 'application/json']], body: '{"detail":"Not Found"}' };
  assert.equal((await fetch(`${url}/__emulator/fault`, { method: 'POST', body: JSON.stringify(bare) })).status, 204);
  const heard = await client.check(README_KEY);
  assert.equal(heard.source, 'cache', JSON.stringify(heard));
  assert.notEqual(heard.reason, 'not_found', JSON.stringify(heard));
  assert.equal((await fetch(`${url}/__emulator/fault`, { method: 'POST', body: 'null' })).status, 204);
  assert.deepEqual(await verdicts(client), before);

  const [, seen] = await control('GET', '/__emulator/requests/seen');
  assert.ok(seen.length >= 6, JSON.stringify(seen));
  for (const r of seen) {
    assert.equal(r.user_agent, AGENT, JSON.stringify(r));
    assert.equal(r.polar_version, null, JSON.stringify(r));
  }
});

test('polar-license/usage (drive.js) names itself too', async () => {
  const sent = [];
  const fetchFn = async (target, init) => {
    sent.push(new Headers(init.headers).get('user-agent'));
    return new Response('{"detail":"Not Found"}', { status: 404, headers: { 'content-type': 'application/json' } });
  };
  await recordUsage({ organizationId: ORG, relay: 'http://127.0.0.1:9', key: README_KEY, meter: 'm', units: 1, fetch: fetchFn })
    .catch(() => {});
  assert.ok(sent.length >= 1);
  for (const agent of sent) assert.equal(agent, AGENT);
});
