// README's size rows ("Performance and size": what a web or Electron app ships, what the npm relay
// weighs) generated from `bash scripts/size.sh --no-build` (the npm package as built in
// target/npm): `node scripts/readme-sizes.mjs --check` fails when a figure in README is off the
// measured one by more than 1 % (the docs stage runs it; a stale figure fails; a change of a few
// hundred bytes in the relay's code does not make every commit regenerate README), or when the
// row's words differ; `--write` puts the exact measured rows in, dated today. The date column
// alone never fails the check.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const README = join(ROOT, 'README.md');
const mode = process.argv[2];
if (mode !== '--check' && mode !== '--write') {
  console.error('usage: node scripts/readme-sizes.mjs --check | --write');
  process.exit(2);
}

const run = spawnSync('bash', [join(ROOT, 'scripts', 'size.sh'), '--no-build'], { cwd: ROOT, encoding: 'utf8' });
const table = run.stdout ?? '';
if (!/whole client\*\*/.test(table)) {
  console.error(`scripts/size.sh --no-build measured nothing (exit ${run.status}):\n${run.stderr}`);
  process.exit(1);
}
/** The gzip column (KB) of the size.sh row whose label matches RE. */
function gz(re) {
  const line = table.split('\n').find((l) => l.startsWith('|') && re.test(l));
  if (!line) throw new Error(`scripts/size.sh printed no row matching ${re}`);
  const cells = line.split('|').map((c) => c.trim());
  return cells[cells.length - 2];
}
const f = {
  wasm: gz(/^\| polar-license: `polar_license_bg\.wasm`/),
  js: gz(/^\| polar-license: JS /),
  total: gz(/^\| \*\*polar-license: whole client\*\*/),
  inline: gz(/^\| \*\*polar-license\/inline/),
  addon: gz(/^\| signed mode's add-on/),
  relay: gz(/^\| polar-license\/relay /),
  tarball: gz(/^\| npm tarball /),
};
const rows = [
  {
    start: '| what my web or Electron app ships |',
    text: (date) => `| what my web or Electron app ships | \`polar-license\`: ${f.total} KB gzipped (JS ${f.js} + wasm ${f.wasm}); \`polar-license/inline\`: ${f.inline} KB in one JS file. Signed mode's verifier is not in it: with relay keys the host verifies (node:crypto, WebCrypto), else a ${f.addon} KB add-on is fetched then. Every part has a budget CI enforces (\`scripts/size-budget.txt\`) | ${date} | \`bash scripts/size.sh\` (this row: \`node scripts/readme-sizes.mjs --write\`) |`,
  },
  {
    start: '| what the npm relay weighs',
    text: (date) => `| what the npm relay weighs (server side: no client bundle carries it) | its wasm ${f.relay} KB gzipped; the whole npm tarball ${f.tarball} KB | ${date} | \`bash scripts/size.sh\` (this row: \`node scripts/readme-sizes.mjs --write\`) |`,
  },
];
const today = new Date().toISOString().slice(0, 10);
const lines = readFileSync(README, 'utf8').split('\n');
const withoutDate = (row) => row.replace(/\| \d{4}-\d{2}-\d{2} \|/, '| DATE |');
const FIGURE = /\d+(?:\.\d+)?/g;
/** The row's words with each figure as `#`, and its figures. */
const split = (row) => ({ words: withoutDate(row).replace(FIGURE, '#'), figures: (withoutDate(row).match(FIGURE) ?? []).map(Number) });
/** README's row says what was measured: the same words, each figure within 1 % of the measured. */
function holds(readme, measured) {
  const a = split(readme);
  const b = split(measured);
  if (a.words !== b.words || a.figures.length !== b.figures.length) return false;
  return a.figures.every((x, k) => Math.abs(x - b.figures[k]) <= 0.01 * b.figures[k]);
}
let stale = 0;
for (const row of rows) {
  const i = lines.findIndex((l) => l.startsWith(row.start));
  if (i < 0) {
    console.error(`README.md has no row starting ${row.start}`);
    process.exit(1);
  }
  const date = (lines[i].match(/\| (\d{4}-\d{2}-\d{2}) \|/) ?? [])[1] ?? today;
  const exact = withoutDate(lines[i]) === withoutDate(row.text(date));
  if (exact || (mode === '--check' && holds(lines[i], row.text(date)))) {
    console.log(`ok - README.md:${i + 1} ${exact ? 'matches' : 'is within 1 % of'} scripts/size.sh`);
    continue;
  }
  stale += 1;
  if (mode === '--write') {
    lines[i] = row.text(today);
    console.log(`README.md:${i + 1} rewritten from scripts/size.sh`);
  } else {
    console.log(`not ok - README.md:${i + 1} is stale (node scripts/readme-sizes.mjs --write):\n  README:   ${lines[i]}\n  measured: ${row.text(date)}`);
  }
}
if (mode === '--write') writeFileSync(README, lines.join('\n'));
process.exit(mode === '--check' && stale ? 1 : 0);
