// The fault matrix (issue #6 item 3) through the installed npm package in node: the rows and
// what each must do are tests/js/fault-rows.mjs's (the browser engines run the same rows:
// tests/browser/faults.test.mjs).
//
// The rows are written to target/fault-matrix/js.tsv for scripts/fault-table.sh
// (js-node18.tsv in the Node 18 run of scripts/test-wasm.sh).
import { after, test } from 'node:test';
import { mapStorage, pkg } from './emulator.mjs';
import { ROWS, runRecorded, writeRows } from './fault-rows.mjs';

const { LicenseClient } = await pkg();

const found = [];

// POLAR_FAULT_MATRIX_NAME: another file for another run of this suite (the Node 18 run).
after(() => writeRows(found, process.env.POLAR_FAULT_MATRIX_NAME ?? 'js'));

/** What a call amounts to: `licensed/online`, `licensed/cache`, or the rejection's code. */
async function settle(promise) {
  try {
    const value = await promise;
    return { code: `licensed/${value.source ?? 'online'}`, value };
  } catch (error) {
    if (typeof error?.code !== 'string') throw error; // not a LicenseError: a bug, fail the row
    return { code: error.code, error };
  }
}

/** The clients in this process (tests/js/fault-rows.mjs's host). */
const host = {
  page: false,
  now: Date.now(),
  stores: {},
  reset() {
    host.stores = { cached: mapStorage(), empty: mapStorage() };
  },
  setNow(ms) {
    host.now = ms;
  },
  client(_name, { store, baseUrl, timeout, organizationId }) {
    const c = new LicenseClient({
      organizationId,
      baseUrl,
      timeout,
      storage: host.stores[store],
      clock: () => host.now,
      gracePolicy: { revalidateAfter: 0 },
    });
    return { validate: (k) => settle(c.validate(k)), check: (k) => settle(c.check(k)), status: (k) => c.status(k) };
  },
};

for (const row of ROWS) test(row[0], () => runRecorded(row, found, host));
