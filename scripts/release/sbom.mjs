// A CycloneDX 1.5 SBOM per artifact of a release (scripts/release.sh): `node
// scripts/release/sbom.mjs OUT VERSION` writes OUT/sbom/<artifact>.cdx.json for every .crate,
// .tgz, .whl, .tar.gz under OUT. What each holds is what `cargo tree` resolves for it from the
// lock file (the crate's, the library's or the module's normal dependencies for the artifact's
// target: what is compiled into it), each component with its crates.io checksum (Cargo.lock)
// and licence (cargo metadata); the artifact itself is the SBOM's subject, with its SHA-256. No
// tool to install (cargo-cyclonedx would build for minutes). Reproducible: the time is
// SOURCE_DATE_EPOCH's and the serial number is derived from the content.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const [out, version] = process.argv.slice(2);
if (!out || !version) {
  console.error('usage: node scripts/release/sbom.mjs OUT VERSION');
  process.exit(2);
}
const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? 0);
const timestamp = new Date(epoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
const PY_MANIFEST = join(ROOT, 'bindings/python/Cargo.toml');
// The npm package's wasm modules (scripts/build-npm.sh builds each into the tarball).
const NPM_CRATES = [
  'polar-license-wasm', 'polar-license-emulator-wasm', 'polar-license-relay-wasm',
  'polar-license-ed25519-wasm', 'polar-license-trial-wasm', 'polar-license-devices-wasm',
  'polar-license-seat-wasm', 'polar-license-usage-wasm',
];

const cache = new Map();
function cargo(args, manifest) {
  const key = JSON.stringify([args, manifest]);
  if (!cache.has(key)) {
    cache.set(key, execFileSync('cargo', [...args, '--locked', ...(manifest ? ['--manifest-path', manifest] : [])], {
      cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'],
    }));
  }
  return cache.get(key);
}
/** name@version -> { checksum, license, local } for a manifest's whole graph. */
function facts(manifest) {
  const lock = readFileSync(manifest ? join(dirname(manifest), 'Cargo.lock') : join(ROOT, 'Cargo.lock'), 'utf8');
  const sums = new Map();
  for (const block of lock.split('[[package]]').slice(1)) {
    const get = (k) => (block.match(new RegExp(`^${k} = "([^"]*)"`, 'm')) ?? [])[1];
    if (get('checksum')) sums.set(`${get('name')}@${get('version')}`, get('checksum'));
  }
  const meta = JSON.parse(cargo(['metadata', '--format-version', '1'], manifest));
  const map = new Map();
  for (const p of meta.packages) {
    map.set(`${p.name}@${p.version}`, { checksum: sums.get(`${p.name}@${p.version}`), license: p.license, local: p.source === null });
  }
  return map;
}
/** The packages compiled into PACKAGES for TARGET (`all`: every target). */
function tree(packages, target, manifest) {
  const found = new Set();
  for (const p of packages) {
    const text = cargo(['tree', '-e', 'normal', '--prefix', 'none', '--format', '{p}', '--target', target,
      ...(manifest ? [] : ['-p', p])], manifest);
    for (const line of text.split('\n')) {
      const m = line.match(/^(\S+) v(\S+)/);
      if (m) found.add(`${m[1]}@${m[2]}`);
    }
  }
  return [...found].sort();
}
function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}
function wheelTarget(name) {
  if (/win_amd64/.test(name)) return 'x86_64-pc-windows-gnu';
  if (/musllinux.*x86_64/.test(name)) return 'x86_64-unknown-linux-musl';
  if (/linux.*aarch64/.test(name)) return 'aarch64-unknown-linux-gnu';
  if (/linux.*x86_64/.test(name)) return 'x86_64-unknown-linux-gnu';
  if (/macosx.*arm64/.test(name)) return 'aarch64-apple-darwin';
  if (/macosx.*x86_64/.test(name)) return 'x86_64-apple-darwin';
  return 'all';
}
/** [subject purl, type, dependency list] for one artifact file, or null (nothing compiled in). */
function describe(dir, file) {
  const triple = (file.match(/-(\w+-\w+-\w+(?:-\w+)?)\.tar\.gz$/) ?? [])[1];
  if (dir === 'crates' && file.endsWith('.crate')) {
    const name = file.slice(0, -`-${version}.crate`.length);
    return { purl: `pkg:cargo/${name}@${version}`, type: 'library', deps: tree([name], 'all') };
  }
  if (dir === 'npm' && file.startsWith('polar-license-tauri')) {
    return { purl: `pkg:npm/%40polar-license/tauri@${version}`, type: 'library', deps: [] };
  }
  if (dir === 'npm') {
    return { purl: `pkg:npm/polar-license@${version}`, type: 'library', deps: tree(NPM_CRATES, 'wasm32-unknown-unknown') };
  }
  if (dir === 'python') {
    return { purl: `pkg:pypi/polar-license@${version}`, type: 'library', deps: tree(['polar-license-python'], file.endsWith('.whl') ? wheelTarget(file) : 'all', PY_MANIFEST), manifest: PY_MANIFEST };
  }
  if (dir === 'c' && triple) {
    return { purl: `pkg:generic/polar-license-c@${version}?arch=${triple}`, type: 'library', deps: tree(['polar-license-c'], triple) };
  }
  if (dir === 'cli' && triple) {
    return { purl: `pkg:cargo/polar-license-cli@${version}?arch=${triple}`, type: 'application', deps: tree(['polar-license-cli'], triple) };
  }
  return null;
}

mkdirSync(join(out, 'sbom'), { recursive: true });
const factsOf = new Map();
let written = 0;
for (const dir of ['crates', 'npm', 'python', 'c', 'cli']) {
  let files = [];
  try { files = readdirSync(join(out, dir)).sort(); } catch { continue; }
  for (const file of files) {
    const d = describe(dir, file);
    if (!d) continue;
    const key = d.manifest ?? '';
    if (!factsOf.has(key)) factsOf.set(key, facts(d.manifest));
    const known = factsOf.get(key);
    const components = d.deps.map((id) => {
      const [name, ver] = id.split('@');
      const f = known.get(id) ?? {};
      return {
        type: 'library',
        'bom-ref': `pkg:cargo/${name}@${ver}`,
        name,
        version: ver,
        purl: `pkg:cargo/${name}@${ver}`,
        ...(f.license ? { licenses: [{ expression: f.license }] } : {}),
        ...(f.checksum ? { hashes: [{ alg: 'SHA-256', content: f.checksum }] } : {}),
        ...(f.local ? { description: 'this repository (first-party)' } : {}),
      };
    });
    const bom = {
      bomFormat: 'CycloneDX',
      specVersion: '1.5',
      version: 1,
      metadata: {
        timestamp,
        tools: { components: [{ type: 'application', name: 'polar-license scripts/release/sbom.mjs', version }] },
        component: {
          type: d.type, 'bom-ref': d.purl, name: file, version, purl: d.purl,
          hashes: [{ alg: 'SHA-256', content: sha256(join(out, dir, file)) }],
          licenses: [{ expression: 'MIT OR Apache-2.0' }],
        },
      },
      components,
    };
    const h = createHash('sha256').update(JSON.stringify(bom)).digest('hex');
    const uuid = `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16], 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
    const withSerial = { bomFormat: bom.bomFormat, specVersion: bom.specVersion, serialNumber: `urn:uuid:${uuid}`, ...bom };
    writeFileSync(join(out, 'sbom', `${file}.cdx.json`), `${JSON.stringify(withSerial, null, 2)}\n`);
    console.log(`sbom/${file}.cdx.json: ${components.length} components`);
    written += 1;
  }
}
if (!written) {
  console.error('sbom: no artifact found');
  process.exit(1);
}
