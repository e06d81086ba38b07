// A Markdown file's block, as the docs stage reads it (tests/docs/blocks.mjs), for the registry
// stage (scripts/test-registry.sh), which runs a guide's example against the installed
// artifacts instead of the checkout:
//   node scripts/release/block.mjs DOC file SCENARIO PATH    prints the file block PATH
//   node scripts/release/block.mjs DOC expect SCENARIO       stdin against the scenario's first
//                                                            output block: exit 1 (and both
//                                                            shown) when it does not match
import { readFileSync } from 'node:fs';
import { blocks, outputMatches } from '../../tests/docs/blocks.mjs';

const [doc, what, scenario, path] = process.argv.slice(2);
const all = blocks(doc).filter((b) => b.marker && typeof b.marker === 'object' && b.marker.scenario === scenario);
if (what === 'file') {
  const b = all.find((x) => x.marker.kind === 'file' && x.marker.path === path);
  if (!b) {
    console.error(`${doc}: no file block ${scenario} ${path}`);
    process.exit(2);
  }
  process.stdout.write(b.code);
} else if (what === 'expect') {
  const b = all.find((x) => x.marker.kind === 'output');
  if (!b) {
    console.error(`${doc}: no output block for ${scenario}`);
    process.exit(2);
  }
  const actual = readFileSync(0, 'utf8');
  if (!outputMatches(b.code, actual)) {
    console.error(`${doc} (${scenario}): expected\n${b.code}got\n${actual}`);
    process.exit(1);
  }
} else {
  console.error('usage: node scripts/release/block.mjs DOC file SCENARIO PATH | DOC expect SCENARIO');
  process.exit(2);
}
