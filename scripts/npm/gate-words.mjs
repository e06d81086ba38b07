// Writes the core's words for what happened where nothing failed into ui.js (scripts/build-npm.sh,
// after stopped.mjs, before the entries are bundled):
//
//   node scripts/npm/gate-words.mjs target/npm/pkg PACK_TIME_MODULE_DIR
//
// <polar-license-gate> shows each answer's `userMessage` (the core's `message::LICENSED`,
// `licensed_offline`, `DEACTIVATED`, `NO_DEVICES`, `NO_KEYS`), which this package's clients hand
// it; a client of the app's own (an IPC bridge, an adapter over another face) may hand none, and
// an error from outside the library has no words: for those the gate says the same words, read
// here from the pack-time module polar_license_stopped_core (bindings/stopped-wasm, never shipped)
// and written over ui.js's `/* CORE_WORDS */ {}` placeholder. A placeholder missing or doubled,
// or a name the core has no words for, fails the pack: nothing is typed twice.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [pkg, dir] = process.argv.slice(2);
if (!pkg || !dir) {
  console.error('usage: node gate-words.mjs PACKAGE_DIR MODULE_DIR');
  process.exit(2);
}

const core = await import(pathToFileURL(join(dir, 'polar_license_stopped_core.js')).href);
core.initSync({ module: readFileSync(join(dir, 'polar_license_stopped_core_bg.wasm')) });
const words = {};
for (const name of ['licensed', 'offlineGrace', 'deactivated', 'noDevices', 'noKeys', 'unknown']) {
  const said = core.gateWords(name);
  if (typeof said !== 'string' || !/^[A-Z][ -~]*\.$/.test(said)) throw new Error(`gate-words.mjs: the core has no words for ${name}: ${said}`);
  words[name] = said;
}
const path = join(pkg, 'ui.js');
const text = readFileSync(path, 'utf8');
const PLACEHOLDER = '/* CORE_WORDS */ {}';
if (text.split(PLACEHOLDER).length !== 2) throw new Error(`gate-words.mjs: ui.js has not exactly one ${PLACEHOLDER}`);
writeFileSync(path, text.replace(PLACEHOLDER, JSON.stringify(words)));
