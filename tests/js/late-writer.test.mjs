// Writes stay ordered by sequence where no lock spans the writers (issue #44 item 3): two copies
// of the package over one storage (two processes over one file store, or tabs of a host without
// Web Locks: each copy's locks are its own). One client reads the key's record to fold Polar's
// answer in; meanwhile the other copy stores two newer records. The late writer loses: it does
// not put its older record back over the newer ledger (a record older than its ledger is
// untrusted; over the newer record it would undo what the other learned, a revocation say); its
// answer stands, `cacheRefreshed: false`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EMULATOR, ORG, PACKAGE_DIR, mapStorage, newKey, pkg } from './emulator.mjs';

const { LicenseClient } = await pkg();
// A second copy of the package: a module of its own, so no lock of the first one's.
const other = await import(`${pathToFileURL(join(PACKAGE_DIR, 'node.js')).href}?another-copy`);

const LEDGER = 'polar-license-ledger v1\n';
/** The sequence number in the ledger `map` holds (one key: one ledger). */
function storedSeq(map) {
  const ledgers = [...map.values()].filter((v) => typeof v === 'string' && v.startsWith(LEDGER));
  assert.equal(ledgers.length, 1);
  return Number(ledgers[0].split('\n')[1]);
}

test('a check that read the record before another copy stored two newer ones does not write its older one', async () => {
  assert.notEqual(other.LicenseClient, LicenseClient);
  const key = await newKey();
  const shared = mapStorage();
  const options = { organizationId: ORG, baseUrl: EMULATOR, gracePolicy: { revalidateAfter: 0 } };
  const b = new other.LicenseClient({ ...options, storage: shared });
  // Run by the late client's storage while it reads the record to fold Polar's answer in:
  // the other copy checks twice (two records stored, each asked online).
  let meanwhile = null;
  const late = {
    get: async (name) => {
      const text = shared.map.get(name);
      if (meanwhile && !name.endsWith('-seq') && !name.endsWith('-clock') && shared.map.has(`${name}-seq`)) {
        const run = meanwhile;
        meanwhile = null;
        await run();
      }
      return text;
    },
    set: shared.set,
    remove: shared.remove,
  };
  const a = new LicenseClient({
    ...options,
    storage: late,
    fetch: async (url, init) => {
      const resp = await fetch(url, init);
      meanwhile = async () => {
        for (let i = 0; i < 2; i++) assert.equal((await b.check(key)).source, 'online');
      };
      return resp;
    },
  });
  assert.equal((await b.check(key)).source, 'online');
  assert.equal(storedSeq(shared.map), 1);
  const answer = await a.check(key);
  assert.equal(meanwhile, null, 'the other copy ran');
  // The answer stands, the cache did not learn it: the other copy's newer record is kept.
  assert.deepEqual([answer.source, answer.license.status, answer.cacheRefreshed], ['online', 'granted', false]);
  assert.equal(storedSeq(shared.map), 3);
  for (const client of [a, b]) {
    const status = await client.status(key);
    assert.deepEqual([status.untrusted, status.standing], [null, 'licensed']);
  }
});
