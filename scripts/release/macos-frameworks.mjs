// Link stubs of the two Apple frameworks our macOS builds link (scripts/release.sh, on Linux):
// `node scripts/release/macos-frameworks.mjs DIR MANIFEST...` writes
// DIR/Security.framework/Security.tbd and DIR/CoreFoundation.framework/CoreFoundation.tbd, text
// stubs (Apple's TAPI format, what an SDK itself ships instead of the libraries) that name each
// framework's install name and the symbols it exports. `rustc -L framework=DIR` then lets Zig's
// linker resolve `-framework Security` without Apple's SDK, which is not redistributable: the
// executable, dylib or Python module records the real install names
// (/System/Library/Frameworks/…) and binds each symbol to its framework, and the Mac's dyld
// loads the real ones.
//
// The symbols are every function and static the -sys crates declare (security-framework-sys:
// Security; core-foundation-sys: CoreFoundation) in the versions the manifests' locks resolve
// for macOS: each crate declares only its own framework's API, so no symbol can be bound to the
// wrong library (scripts/test-registry.sh checks the bindings of the built files again). A
// framework some new dependency links that is not here fails the link, loudly.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const [dir, ...manifests] = process.argv.slice(2);
if (!dir || manifests.length === 0) {
  console.error('usage: node scripts/release/macos-frameworks.mjs DIR MANIFEST...');
  process.exit(2);
}
const FRAMEWORKS = { 'security-framework-sys': 'Security', 'core-foundation-sys': 'CoreFoundation' };
const symbols = Object.fromEntries(Object.values(FRAMEWORKS).map((f) => [f, new Set()]));

const rsFiles = (d) => readdirSync(d).flatMap((n) => {
  const p = join(d, n);
  return statSync(p).isDirectory() ? rsFiles(p) : n.endsWith('.rs') ? [p] : [];
});
for (const manifest of manifests) {
  for (const triple of ['aarch64-apple-darwin', 'x86_64-apple-darwin']) {
    const m = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--locked',
      '--manifest-path', manifest, '--filter-platform', triple], { encoding: 'utf8', maxBuffer: 1 << 28 }));
    for (const p of m.packages) {
      const framework = FRAMEWORKS[p.name];
      if (!framework) continue;
      for (const f of rsFiles(join(dirname(p.manifest_path), 'src'))) {
        // Declarations inside `extern "C" { … }`: `pub fn Name(` and `pub static [mut] Name:`.
        // (A Rust function of the crate caught as well is defined in Rust, never looked up.)
        for (const [, name] of readFileSync(f, 'utf8').matchAll(/\bpub\s+(?:fn|static(?:\s+mut)?)\s+([A-Za-z_][A-Za-z0-9_]*)\s*[(:<]/g)) {
          symbols[framework].add(`_${name}`);
        }
      }
    }
  }
}
const targets = '[ x86_64-macos, arm64-macos, arm64e-macos ]';
for (const framework of Object.values(FRAMEWORKS)) {
  const names = [...symbols[framework]].sort();
  if (names.length === 0) {
    console.error(`macos-frameworks: no symbols found for ${framework} (is its -sys crate still a dependency?)`);
    process.exit(1);
  }
  const out = join(dir, `${framework}.framework`);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, `${framework}.tbd`), [
    '--- !tapi-tbd',
    'tbd-version:     4',
    `targets:         ${targets}`,
    `install-name:    '/System/Library/Frameworks/${framework}.framework/Versions/A/${framework}'`,
    'current-version: 1',
    'exports:',
    `  - targets:         ${targets}`,
    `    symbols:         [ ${names.join(', ')} ]`,
    '...',
    '',
  ].join('\n'));
  console.log(`${framework}: ${names.length} symbols`);
}
