// The README's examples: every fenced block preceded by `<!-- example: NAME -->`.
// As a command: `node readme-blocks.mjs LANG README.md` prints the blocks of that language.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function readmeBlocks(path) {
  const text = readFileSync(path, 'utf8');
  const re = /<!-- example: ([\w-]+) -->\s*\n```(\w+)\n([\s\S]*?)\n```/g;
  const blocks = [];
  for (const m of text.matchAll(re)) blocks.push({ name: m[1], lang: m[2], code: m[3] + '\n' });
  return blocks;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [lang, path] = process.argv.slice(2);
  for (const b of readmeBlocks(path).filter((b) => b.lang === lang)) process.stdout.write(b.code);
}
