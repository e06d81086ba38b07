// index.d.ts against the Rust side's real answers: every answer crates/tauri/tests/commands.rs
// recorded is written into a TypeScript file as an object literal of its declared type (an
// extra field the types lack, a missing one, or a value outside a union fails tsc), and the
// reason codes and their classes are checked both ways against the Rust table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixturesDir } from './fixtures.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const TSC = join(HERE, '../node_modules/typescript/bin/tsc');

const TYPE_OF = {
  check: 'LicenseState',
  check_in_background: 'LicenseState',
  activate: 'Activated',
  validate: 'Validated',
  status: 'StatusState',
  remembered_key: 'RememberedKey',
  has_feature: 'FeatureState',
  entitlement: 'EntitlementState',
  deactivate: 'Deactivated',
  forget_key: 'null',
  request_sign_in_code: 'null',
  sign_in: 'null',
  sign_out: 'null',
  list_devices: 'DeviceList',
  free_device: 'null',
  recoverable_keys: 'RecoverableKey[]',
  recover_key: 'Activated',
  follow_rotation: 'Followed',
  open_checkout_link: 'string',
  open_relay_checkout: 'string',
  buy: 'Bought',
  buy_signed_in: 'Bought',
  seat_acquire: 'SeatInfo',
  seat_heartbeat: 'SeatInfo',
  seat_release: 'SeatReleased',
  record_usage: 'UsageRecorded',
};

test('every answer the plugin gave has exactly the declared type', () => {
  assert.ok(existsSync(TSC), `${TSC}: npm ci in crates/tauri/guest-js (scripts/setup.sh does)`);
  const dir = fixturesDir();
  const lines = [
    "import type { Activated, Bought, Deactivated, DeviceErrorData, DeviceList, EntitlementState, FeatureState, Followed, LicenseErrorData, RecoverableKey, LicenseState, ReasonClass, ReasonCode,",
    "  PurchaseErrorData, RememberedKey, SeatErrorData, SeatInfo, SeatReleased, StatusState, UsageErrorData, UsageRecorded, Validated } from '../../index.js';",
    "import { CHECKED_EVENT } from '../../index.js';",
  ];
  let n = 0;
  for (const file of readdirSync(dir).filter((f) => /^answers-.*\.json$/.test(f)).sort()) {
    for (const entry of JSON.parse(readFileSync(join(dir, file), 'utf8'))) {
      n++;
      if (entry.event) {
        lines.push(`const event${n}: typeof CHECKED_EVENT = ${JSON.stringify(entry.event)};`);
        lines.push(`const a${n}: LicenseState = ${JSON.stringify(entry.payload)};`);
      } else if ('ok' in entry) {
        lines.push(`const a${n}: ${TYPE_OF[entry.command]} = ${JSON.stringify(entry.ok)};`);
      } else if (typeof entry.err === 'object' && 'purchaseError' in entry.err) {
        lines.push(`const a${n}: PurchaseErrorData = ${JSON.stringify(entry.err)};`);
      } else if (typeof entry.err === 'object' && 'portalError' in entry.err) {
        lines.push(`const a${n}: DeviceErrorData = ${JSON.stringify(entry.err)};`);
      } else if (typeof entry.err === 'object' && entry.command.startsWith('seat_')) {
        lines.push(`const a${n}: SeatErrorData = ${JSON.stringify(entry.err)};`);
      } else if (typeof entry.err === 'object' && entry.command === 'record_usage') {
        lines.push(`const a${n}: UsageErrorData = ${JSON.stringify(entry.err)};`);
      } else if (typeof entry.err === 'object') {
        lines.push(`const a${n}: LicenseErrorData = ${JSON.stringify(entry.err)};`);
      }
    }
  }
  const reasons = JSON.parse(readFileSync(join(dir, 'reasons.json'), 'utf8'));
  // Each Rust code is a ReasonCode of its class, and ReasonCode has no code Rust lacks.
  lines.push(`const rust = ${JSON.stringify(reasons.map((r) => r.code))} as const;`);
  lines.push('const codes: readonly ReasonCode[] = rust;');
  lines.push('type Extra = Exclude<ReasonCode, (typeof rust)[number]>;');
  lines.push('const noExtra: [Extra] extends [never] ? true : false = true;');
  for (const r of reasons) {
    lines.push(`const class_${r.code}: ReasonClass = ${JSON.stringify(r.class)};`);
  }
  lines.push('export { codes, noExtra };');
  const out = join(HERE, '.generated');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'answers.ts'), lines.join('\n') + '\n');
  writeFileSync(
    join(out, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        exactOptionalPropertyTypes: true,
        noUnusedLocals: false,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        types: [],
      },
      files: ['answers.ts'],
    }),
  );
  const tsc = spawnSync(process.execPath, [TSC, '-p', out], { encoding: 'utf8' });
  assert.equal(tsc.status, 0, `tsc:\n${tsc.stdout}${tsc.stderr}`);
  assert.ok(n >= 40, `${n} answers checked`);
});

test('the declared unions name each code in its class', () => {
  const reasons = JSON.parse(readFileSync(join(fixturesDir(), 'reasons.json'), 'utf8'));
  const dts = readFileSync(join(HERE, '../index.d.ts'), 'utf8');
  const union = (name) => {
    const m = dts.match(new RegExp(`export type ${name} =([^;]+);`));
    return [...m[1].matchAll(/'([a-z_]+)'/g)].map((x) => x[1]);
  };
  const byClass = { denied: union('DenialCode'), unverified: union('UnverifiedCode'), error: union('ErrorCode') };
  for (const { code, class: cls } of reasons) {
    assert.ok(byClass[cls].includes(code), `${code} is in the ${cls} union`);
  }
  assert.equal(Object.values(byClass).flat().length, reasons.length);
});
