// Writes polar_license_stopped.js, why a key stopped in the core's words (`Stopped::user_message`),
// into the package (scripts/build-npm.sh, after the template is copied and before the entries
// are bundled):
//
//   node scripts/npm/stopped.mjs target/npm/pkg PACK_TIME_MODULE_DIR VERSION
//
// The npm engine's wasm, which every check downloads, carries none of these words: a denial
// gives the stopped facts (`stopped`: `{kind, at, until}`), and license.js imports this module
// only for a denial that carries them, to say its `userMessage`. The module is a table, each
// kind's `[sentence]`, or for a kind whose sentence names a date `[undated sentence, 0 (at) or
// 1 (until), before the date, after it]`, read from the pack-time module polar_license_stopped_core
// (bindings/stopped-wasm: the core's sentences, never shipped), and `said(stopped)`, which fills
// in the date as the core writes it (UTC, `2027-06-03`) for the years 0000 to 9999 (a date
// outside them, no relay's, leaves it out). The written module itself then says every kind,
// undated, with each date and both, at dates from year 0 to 9999 and outside, and each answer
// is compared with the core's: one difference fails the pack. Nothing is typed twice.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [pkg, dir, version] = process.argv.slice(2);
if (!pkg || !dir || !version) {
  console.error('usage: node stopped.mjs PACKAGE_DIR MODULE_DIR VERSION');
  process.exit(2);
}

const core = await import(pathToFileURL(join(dir, 'polar_license_stopped_core.js')).href);
core.initSync({ module: readFileSync(join(dir, 'polar_license_stopped_core_bg.wasm')) });
const text = (kind, at, until) =>
  [kind, at == null ? '' : `at=${at}`, until == null ? '' : `until=${until}`].filter(Boolean).join('; ');
const coreSaid = (kind, at, until) => {
  const m = core.userMessage(text(kind, at, until));
  if (typeof m !== 'string' || m === '') throw new Error(`stopped.mjs: the core says nothing for ${text(kind, at, until)}`);
  return m;
};

// Two dates on different days.
const AT = 1810814400; // 2027-05-20
const UNTIL = 1812024000; // 2027-06-03
const table = {};
for (const kind of core.kinds().split(',')) {
  if (!/^[a-z_]+$/.test(kind)) throw new Error(`stopped.mjs: an unexpected kind ${kind}`);
  const plain = coreSaid(kind);
  const dated = [
    [coreSaid(kind, AT), core.day(BigInt(AT)), 0],
    [coreSaid(kind, null, UNTIL), core.day(BigInt(UNTIL)), 1],
  ].filter(([m]) => m !== plain);
  if (dated.length > 1) throw new Error(`stopped.mjs: ${kind}'s sentence names two dates: the table holds one`);
  if (dated.length === 0) {
    table[kind] = [plain];
    continue;
  }
  const [[m, day, i]] = dated;
  const parts = m.split(day);
  if (parts.length !== 2) throw new Error(`stopped.mjs: ${kind}'s dated sentence does not hold its date once: ${m}`);
  table[kind] = [plain, i, ...parts];
}

const path = join(pkg, 'polar_license_stopped.js');
writeFileSync(path, `// polar-license ${version}: why a key stopped, in the core's words (Stopped::user_message),
// written from the core by scripts/npm/stopped.mjs; license.js imports it only for a denial that
// says why the key stopped.
const WORDS = {
${Object.entries(table).map(([kind, row]) => `  ${kind}: ${JSON.stringify(row)},\n`).join('')}};

/** The sentence for a denial's \`stopped\` ({kind, at, until}, the dates unix seconds or null). */
export default function said({ kind, at, until }) {
  const row = WORDS[kind];
  if (!row) return undefined;
  // The core's UTC date (2027-06-03), for the years 0000 to 9999.
  const t = ([at, until][row[1]] ?? NaN) * 1000;
  return t >= -62167219200000 && t < 253402300800000 ? row[2] + new Date(t).toISOString().slice(0, 10) + row[3] : row[0];
}
`);

// The written module, said against the core's, for every kind and dates across the years.
const { default: said } = await import(pathToFileURL(path).href);
const dates = [0, -1, AT, UNTIL, -62167219200, -62167219201, 253402300799, 253402300800, 951782400, 4107542400, 1e12, -1e12];
let compared = 0;
for (const kind of Object.keys(table)) {
  for (const at of [null, ...dates]) {
    for (const until of [null, ...dates]) {
      const got = said({ kind, at, until });
      // Outside the years 0000-9999 the date is left out: the core's undated sentence.
      const inYears = (d) => d == null || (d >= -62167219200 && d <= 253402300799);
      const want = coreSaid(kind, inYears(at) ? at : null, inYears(until) ? until : null);
      if (got !== want) throw new Error(`stopped.mjs: polar_license_stopped.js says ${JSON.stringify(got)} for ${text(kind, at, until)}, the core ${JSON.stringify(want)}`);
      compared += 1;
    }
  }
}
console.log(`stopped.mjs: ${Object.keys(table).length} kinds' sentences into polar_license_stopped.js (${compared} said as the core says them)`);
