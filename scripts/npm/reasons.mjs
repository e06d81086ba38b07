// Writes the package's one reason table into its two JS faces (scripts/build-npm.sh, after the
// template is copied and before the entries are bundled):
//
//   node scripts/npm/reasons.mjs target/npm/pkg
//
// The codes and their kinds come from the core (`Reason::ALL`, its codes and classes), read
// through the packed engine's own `reasonTable` step, and replace the `/* REASONS */ {}`
// placeholder of license.js (the ES entries' `REASONS`) and of commonjs.cjs (the CommonJS
// entries', which must have it before the ES module loads: `require` of an ES module needs node
// 20.19, and a browser cannot import CommonJS, so neither file can import the other's). The
// LicenseError fields (license.js's `EXTRAS`) are copied into commonjs.cjs's `/* EXTRAS */ []`
// the same way. A placeholder missing or doubled fails the pack: nothing is typed twice.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [pkg] = process.argv.slice(2);
if (!pkg) {
  console.error('usage: node reasons.mjs PACKAGE_DIR');
  process.exit(2);
}

const glue = await import(pathToFileURL(join(pkg, 'polar_license.js')).href);
glue.initSync({ module: readFileSync(join(pkg, 'polar_license_bg.wasm')) });
// Any valid options: the reason table depends on none of them.
const options = JSON.stringify({ organizationId: '00000000-0000-4000-8000-000000000000' });
const rows = JSON.parse(new glue.Engine(options, 'null').call('reasonTable', []));
if (!Array.isArray(rows) || rows.length === 0) throw new Error(`reasons.mjs: no reason table from the engine: ${JSON.stringify(rows)}`);
for (const { code, kind } of rows) {
  if (!/^[a-z_]+$/.test(code) || !['denied', 'unverified', 'error'].includes(kind)) {
    throw new Error(`reasons.mjs: an unexpected row ${JSON.stringify({ code, kind })}`);
  }
}
const table = `{\n${rows.map(({ code, kind }) => `  ${code}: '${kind}',\n`).join('')}}`;

/** `text` with its one `placeholder` replaced by `value`. */
function fill(text, placeholder, value, file) {
  const parts = text.split(placeholder);
  if (parts.length !== 2) throw new Error(`reasons.mjs: ${file} has ${parts.length - 1} of ${placeholder}, not one`);
  return parts.join(value);
}

const licensePath = join(pkg, 'license.js');
let license = fill(readFileSync(licensePath, 'utf8'), '/* REASONS */ {}', table, 'license.js');
// The core's words for the cache_error license.js raises itself (before any engine exists).
const cacheError = rows.find((r) => r.code === 'cache_error')?.userMessage;
if (typeof cacheError !== 'string' || !cacheError) throw new Error('reasons.mjs: no words for cache_error from the engine');
license = fill(license, "/* CACHE_ERROR_SAID */ ''", JSON.stringify(cacheError), 'license.js');
const extras = license.match(/^const EXTRAS = (\[[^\n\]]*\]);$/m);
if (!extras) throw new Error('reasons.mjs: license.js has no `const EXTRAS = [...];` line');
writeFileSync(licensePath, license);

const cjsPath = join(pkg, 'commonjs.cjs');
let cjs = fill(readFileSync(cjsPath, 'utf8'), '/* REASONS */ {}', table, 'commonjs.cjs');
cjs = fill(cjs, '/* EXTRAS */ []', extras[1], 'commonjs.cjs');
writeFileSync(cjsPath, cjs);
console.log(`reasons.mjs: ${rows.length} reason codes into license.js and commonjs.cjs`);
