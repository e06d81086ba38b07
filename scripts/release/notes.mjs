// The release notes (scripts/release.sh): `node scripts/release/notes.mjs OUT VERSION CHANGELOG`
// prints CHANGELOG.md's entry for VERSION (a `## [VERSION]` heading up to the next `## `; a
// release without one fails), then every artifact under OUT with its size in bytes, so the
// notes say what each download weighs.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const [out, version, changelog] = process.argv.slice(2);
const text = readFileSync(changelog, 'utf8');
const start = text.search(new RegExp(`^## \\[${version.replaceAll('.', '\\.')}\\]`, 'm'));
if (start < 0) {
  console.error(`release notes: ${changelog} has no "## [${version}]" entry: write it before releasing`);
  process.exit(1);
}
const rest = text.slice(start);
const next = rest.slice(3).search(/^## /m);
const entry = (next < 0 ? rest : rest.slice(0, next + 3)).trimEnd();
const rows = [];
for (const dir of ['crates', 'npm', 'python', 'c', 'cli']) {
  let files = [];
  try { files = readdirSync(join(out, dir)).sort(); } catch { continue; }
  for (const f of files) {
    if (f === 'PUBLISH-ORDER') continue;
    rows.push(`| \`${dir}/${f}\` | ${statSync(join(out, dir, f)).size.toLocaleString('en-GB')} |`);
  }
}
console.log(`${entry}\n\n### Artifacts\n\nEach with a CycloneDX SBOM (\`sbom/<file>.cdx.json\`) and its SHA-256 in \`SHA256SUMS\`.\n\n| file | bytes |\n|---|---:|\n${rows.join('\n')}`);
