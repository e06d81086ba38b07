// Plain data across a process boundary (Electron's IPC is a structured clone, which keeps only
// an Error's message): `toJSON()` of a verdict and of a LicenseError; and the CommonJS entry's
// names (`require('polar-license').LicenseClient`, TypeScript compiled to CommonJS).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CONSUMER, DEAD, DEMO_BENEFIT, EMULATOR, ORG, PACKAGE_DIR, importAsApp, newKey, pkg, rejection, relay } from './emulator.mjs';

const run = promisify(execFile);
const { LicenseClient, LicenseError, REASONS } = await pkg();
const PRO = DEMO_BENEFIT;
const TEAM = '6e4d3c2b-0f9a-4b8c-9d7e-2f3a4b5c6d7e';
const features = { export_pdf: [PRO], team_sync: [TEAM] };

function client(options = {}) {
  return new LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory', features, ...options });
}

test("a verdict's toJSON keeps its fields and every feature's answer through structuredClone", async () => {
  const key = await newKey({ benefit_id: PRO });
  const result = await client().check(key);
  const data = structuredClone(result.toJSON());
  assert.equal(data.source, 'online');
  assert.equal(data.graceEndsAt, result.graceEndsAt);
  assert.ok(data.graceEndsAt > data.verifiedAt);
  assert.equal(data.license.key, key);
  assert.equal(data.license.benefitId, PRO);
  assert.deepEqual(data.features.export_pdf, result.hasFeature('export_pdf'));
  assert.equal(data.features.export_pdf.granted, true);
  assert.equal(data.features.team_sync.why, 'not_granted_by_benefit');
  assert.deepEqual(Object.keys(data.features), ['export_pdf', 'team_sync']);
  assert.deepEqual(JSON.parse(JSON.stringify(result)), data);
  // The verdict itself stays plain data (its methods are not enumerable).
  assert.deepEqual(Object.keys(structuredClone(result)), Object.keys(data).filter((k) => k !== 'features'));
});

test("a cache answer's toJSON keeps the source, the fallback reason and the grace", async () => {
  const polar = await relay(EMULATOR);
  const key = await newKey({ benefit_id: TEAM });
  const c = client({ baseUrl: polar.url, gracePolicy: { revalidateAfter: 0 } });
  await c.check(key);
  polar.mode = 'down';
  const cached = await c.check(key);
  await polar.close();
  const data = structuredClone(cached.toJSON());
  assert.equal(data.source, 'cache');
  assert.equal(data.reason, 'offline');
  assert.ok(data.graceRemaining > 0);
  assert.equal(data.graceEndsAt, cached.graceEndsAt);
  assert.equal(data.features.team_sync.granted, true);
  assert.equal(data.features.team_sync.source, 'cache');
});

test("a LicenseError's toJSON keeps code, userMessage, hint and the rest through structuredClone", async () => {
  const key = await newKey();
  const c = client();
  await c.check(key);
  const resp = await fetch(`${EMULATOR}/__emulator/keys/${key}/rotate`, { method: 'POST' });
  assert.equal(resp.status, 200);
  const err = await rejection(c.validate(key));
  assert.ok(err instanceof LicenseError);
  const data = structuredClone(err.toJSON());
  assert.equal(data.name, 'LicenseError');
  assert.equal(data.code, 'not_found');
  assert.equal(data.kind, 'denied');
  assert.equal(data.message, err.message);
  assert.equal(data.detail, 'Not found');
  assert.equal(data.status, 404);
  assert.equal(data.previouslyValid, true);
  // One sentence (the hint) and the core's one next step beside it (issue #80).
  assert.match(data.hint, /replaced/);
  assert.match(data.nextStep, /customer portal/);
  assert.match(data.userMessage, /replaced.*customer portal/s);
  assert.match(data.userMessage, /^This key was valid here before/);
  assert.deepEqual(JSON.parse(JSON.stringify(err)), data);

  const offline = await rejection(client({ baseUrl: DEAD }).check(await newKey()));
  const plain = structuredClone(offline.toJSON());
  assert.equal(plain.code, 'offline');
  assert.equal(plain.kind, 'unverified');
  assert.equal(typeof plain.userMessage, 'string');
  assert.equal(plain.userMessage, offline.userMessage);
});

const require = createRequire(join(CONSUMER, 'package.json'));

test("require('polar-license') gives LicenseClient, LicenseError, REASONS and init", async () => {
  const cjs = require('polar-license');
  assert.deepEqual(cjs.REASONS, REASONS);
  await cjs.init();
  const c = new cjs.LicenseClient({ organizationId: ORG, baseUrl: EMULATOR, storage: 'memory', features });
  const result = await c.check(await newKey({ benefit_id: PRO }));
  assert.equal(result.hasFeature('export_pdf').granted, true);
  assert.equal(result.toJSON().features.export_pdf.granted, true);
  const err = await rejection(c.check('JS-NO-SUCH-KEY'));
  assert.ok(err instanceof cjs.LicenseError, 'an ES LicenseError is a CommonJS LicenseError');
  assert.equal(err.code, 'not_found');
  const own = new cjs.LicenseError('invalid_input', 'key: empty', { field: 'key', ignored: 1 });
  assert.ok(own instanceof cjs.LicenseError);
  assert.ok(!(new Error('x') instanceof cjs.LicenseError));
  assert.deepEqual(own.toJSON(), new LicenseError('invalid_input', 'key: empty', { field: 'key', ignored: 1 }).toJSON());
  const bad = await rejection(new cjs.LicenseClient({ organizationId: 'nope' }).check('K'));
  assert.equal(bad.code, 'invalid_input');
  assert.equal((await cjs.load()).LicenseClient, LicenseClient);
});

test('the ES and CommonJS entries give the same kind for every reason code of the core, and keep the same fields', async () => {
  // The codes from the core (Reason::ALL through the packed engine's reasonTable step), not
  // typed here: the package holds one table, written into both faces at pack time.
  const glue = await import(pathToFileURL(join(PACKAGE_DIR, 'polar_license.js')).href);
  glue.initSync({ module: await readFile(join(PACKAGE_DIR, 'polar_license_bg.wasm')) });
  const rows = JSON.parse(new glue.Engine(JSON.stringify({ organizationId: ORG }), 'null').call('reasonTable', []));
  assert.ok(rows.length > 0);
  const core = Object.fromEntries(rows.map((r) => [r.code, r.kind]));
  // A field of every LicenseError extra the ES entry keeps (its toJSON's own), some of them
  // added after the CommonJS face was first written (stopped, paidThrough…).
  const extras = { status: 404, field: 'key', retryAfter: 3, remainingUsages: 0, timeout: true, cacheRefreshed: false, previouslyValid: true, activationGone: true, hint: 'h', userMessage: 'u', fallback: 'f', paidThrough: 9, trial: {}, stopped: { kind: 'paused', at: 1, until: null } };
  for (const entry of ['polar-license', 'polar-license/inline']) {
    const esm = await importAsApp(`reasons-${entry.replace('/', '-')}.mjs`, entry);
    const cjs = require(entry);
    assert.deepEqual({ ...esm.REASONS }, core, `${entry}: ES REASONS`);
    assert.deepEqual({ ...cjs.REASONS }, core, `${entry}: CommonJS REASONS`);
    assert.deepEqual(Object.keys(cjs.REASONS), Object.keys(esm.REASONS), entry);
    for (const [code, kind] of Object.entries(core)) {
      const a = new esm.LicenseError(code, 'd', extras);
      const b = new cjs.LicenseError(code, 'd', extras);
      assert.equal(a.kind, kind, `${entry} ES ${code}`);
      assert.equal(b.kind, kind, `${entry} CommonJS ${code}`);
      assert.deepEqual(b.toJSON(), a.toJSON(), `${entry} ${code}`);
    }
  }
});

const TSC = fileURLToPath(new URL('../../scripts/npm/node_modules/typescript/bin/tsc', import.meta.url));

for (const module of ['commonjs', 'node16']) {
  test(`a TypeScript project emitting CommonJS ("module": "${module}") compiles and runs the named import`, async () => {
    const dir = join(CONSUMER, `cjs-ts-${module}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    await writeFile(join(dir, 'package.json'), '{ "name": "cjs-ts", "private": true }\n');
    const options = { target: 'es2022', module, strict: true, outDir: 'out', types: [], lib: ['es2022', 'dom'] };
    await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: options, files: ['main.ts'] }));
    await writeFile(
      join(dir, 'main.ts'),
      `import { LicenseClient, LicenseError, type CheckResultData, type LicenseErrorData } from 'polar-license';\n` +
        `declare const process: { argv: string[] };\n` +
        `const client = new LicenseClient({ organizationId: '${ORG}', baseUrl: process.argv[2], storage: 'memory' });\n` +
        `async function main(key: string): Promise<CheckResultData | LicenseErrorData> {\n` +
        `  try { return (await client.check(key)).toJSON(); }\n` +
        `  catch (e) { if (e instanceof LicenseError) return e.toJSON(); throw e; }\n` +
        `}\n` +
        `main(process.argv[3]).then((d) => console.log('code' in d ? d.code : d.source));\n`,
    );
    await run(process.execPath, [TSC, '-p', dir], { cwd: dir });
    const key = await newKey();
    const good = await run(process.execPath, [join(dir, 'out', 'main.js'), EMULATOR, key], { cwd: dir });
    assert.equal(good.stdout, 'online\n');
    const bad = await run(process.execPath, [join(dir, 'out', 'main.js'), EMULATOR, 'JS-NO-SUCH-KEY'], { cwd: dir });
    assert.equal(bad.stdout, 'not_found\n');
  });
}
