// The package under Bun (issue #14), from the installed tarball: the `bun` npm package pinned
// in scripts/npm runs a script in the consumer project that checks a key against the emulator,
// twice; Bun takes the node entry, so the default store is the file store and the second run
// (a restart) answers from the file the first one wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CONSUMER, EMULATOR, ORG, newKey } from './emulator.mjs';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUN = join(ROOT, 'scripts', 'npm', 'node_modules', '.bin', 'bun');
const bun = await access(BUN).then(
  () => false,
  () => `no ${BUN}: run scripts/setup-wasm.sh`,
);

test('Bun runs the package: a check online, then from the file cache after a restart', { skip: bun }, async () => {
  const data = await mkdtemp(join(tmpdir(), 'polar-license-bun-'));
  try {
    const key = await newKey();
    const script = join(CONSUMER, 'bun-check.mjs');
    await writeFile(
      script,
      `import { LicenseClient, LicenseError } from 'polar-license';
const client = new LicenseClient({ organizationId: ${JSON.stringify(ORG)}, baseUrl: ${JSON.stringify(EMULATOR)}, appId: 'bun-check' });
const verdict = await client.check(${JSON.stringify(key)});
const status = await client.status(${JSON.stringify(key)});
let unknown;
try {
  await client.validate('NO-SUCH-KEY-${key}');
} catch (e) {
  unknown = e instanceof LicenseError ? e.code : String(e);
}
console.log(JSON.stringify({ source: verdict.source, storage: status.storage, unknown, bun: typeof Bun !== 'undefined' }));
`,
    );
    const env = { ...process.env, XDG_DATA_HOME: data };
    const once = async () => JSON.parse((await run(BUN, [script], { cwd: CONSUMER, env, timeout: 60_000 })).stdout);
    assert.deepEqual(await once(), { source: 'online', storage: 'file', unknown: 'not_found', bun: true });
    assert.deepEqual(await once(), { source: 'cache', storage: 'file', unknown: 'not_found', bun: true });
  } finally {
    await rm(data, { recursive: true, force: true });
  }
});
