// Issue #79: every install line of the README and the guides shows the published form, with the
// checkout's form beside it while unpublished, and every published form is one the registry stage
// runs (scripts/test-registry.sh, against Verdaccio, a pip index, the packaged crates and the
// release's install.sh). `node tests/docs/install-lines.mjs` lists what it found; tests/docs/run.mjs
// runs the same check (`installLines`) as one test of the docs stage.
//
// A line is an install line when it holds one of FORMS (git grep over the tracked Markdown files
// but the changelog, CONTRIBUTING.md and the history of measurements, docs/performance.md). A
// published form passes when the registry stage has the check it names (its title, in
// test-registry.sh); a checkout form passes when a published form of the same kind is on its
// line or within NEAR lines of it (the comment after it, the sentence before the block).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const NEAR = 3;
// (CONTRIBUTING.md is for contributors, who work from the checkout: its stage table names the
// commands CI runs, such as the package stage's `cargo install --path crates/cli`, not lines a
// user pastes.)
const SKIP = new Set(['CHANGELOG.md', 'docs/performance.md', 'CONTRIBUTING.md']);

/** kind: which published form a checkout form stands for; check: the registry stage's check. */
export const FORMS = [
  // Published.
  { kind: 'npm', published: true, re: /npm (?:install|i)\b[^`\n#]*?(?<![\w./@-])polar-license(?![\w./@-])/, check: 'npm install polar-license in a fresh project' },
  { kind: 'tauri-npm', published: true, re: /npm (?:install|i)\b[^`\n#]*@polar-license\/tauri/, check: 'npm install @polar-license/tauri in a fresh project' },
  { kind: 'pip', published: true, re: /pip install\b[^`\n#]*?(?<![\w./-])polar-license(?:==[\d.]+)?(?![\w./-])/, check: 'pip install polar-license from the index' },
  { kind: 'cargo', published: true, re: /\bpolar-license(?:-emulator)? = "0\.1"/, check: 'cargo: README\'s Rust example built against the packaged crates' },
  { kind: 'tauri', published: true, re: /\btauri-plugin-polar-license = "0\.1"/, check: 'cargo: tauri-plugin-polar-license 0.1 resolves to the packaged crate' },
  { kind: 'cli', published: true, re: /cargo install polar-license-cli\b/, check: 'cargo install polar-license-cli from the packaged crates' },
  { kind: 'cli', published: true, re: /install\.sh \\?\| sh\b/, check: 'install.sh installs the CLI into a fresh prefix' },
  { kind: 'c', published: true, re: /polar-license-c-[\d.]+-(?:TRIPLE|<platform>|[\w-]+)\.tar\.gz/, check: 'C: launch.c linked by pkg-config (shared) runs' },
  // From a checkout.
  { kind: 'npm', published: false, re: /npm (?:install|i)\b[^`\n]*?polar-license-[\d.]+\.tgz/ },
  { kind: 'cargo', published: false, re: /\bpolar-license(?:-emulator)? = \{ path = / },
  { kind: 'tauri', published: false, re: /\btauri-plugin-polar-license = \{ path = / },
  { kind: 'cli', published: false, re: /cargo install\b[^`\n]*--path\s+\S*crates\/cli/ },
  { kind: 'c', published: false, re: /bash bindings\/c\/install\.sh --prefix/ },
  { kind: 'pip', published: false, re: /pip install\b[^`\n]*(?:\.whl|\S*bindings\/python)|`pip install` the wheel/ },
];

/** Every install line: `{ where, text, form }`, and the problems found. */
export function installLines() {
  const registry = readFileSync(join(ROOT, 'scripts', 'test-registry.sh'), 'utf8');
  const files = execFileSync('git', ['ls-files', '*.md'], { cwd: ROOT, encoding: 'utf8' })
    .split('\n').filter((f) => f && !SKIP.has(f));
  const found = [];
  const problems = [];
  for (const file of files) {
    let lines;
    try { lines = readFileSync(join(ROOT, file), 'utf8').split('\n'); } catch { continue; }
    lines.forEach((text, i) => {
      for (const form of FORMS) {
        if (!form.re.test(text)) continue;
        const where = `${file}:${i + 1}`;
        found.push({ where, text: text.trim(), form });
        if (form.published) {
          if (!registry.includes(`"${form.check}`)) {
            problems.push(`${where}: the published form ${form.re} has no registry check "${form.check}" in scripts/test-registry.sh`);
          }
        } else {
          const near = lines.slice(Math.max(0, i - NEAR), i + NEAR + 1).join('\n');
          const published = FORMS.filter((f) => f.published && f.kind === form.kind);
          if (!published.some((f) => f.re.test(near))) {
            problems.push(`${where}: a checkout's install line without its published form within ${NEAR} lines: ${text.trim()}`);
          }
        }
      }
    });
  }
  return { found, problems };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { found, problems } = installLines();
  for (const f of found) console.log(`${f.form.published ? 'published' : 'checkout '} ${f.form.kind.padEnd(9)} ${f.where}`);
  for (const p of problems) console.log(`not ok - ${p}`);
  console.log(`install lines: ${found.length} found, ${problems.length} problems`);
  process.exit(problems.length ? 1 : 0);
}
