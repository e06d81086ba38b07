// Where crates/tauri/tests/commands.rs wrote its answers: <target>/tmp/polar-license-tauri.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export function fixturesDir() {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
  const target = process.env.CARGO_TARGET_DIR ? resolve(root, process.env.CARGO_TARGET_DIR) : join(root, 'target');
  const dir = process.env.POLAR_TAURI_FIXTURES ?? join(target, 'tmp', 'polar-license-tauri');
  if (!existsSync(join(dir, 'reasons.json'))) {
    throw new Error(`${dir}: no answers recorded; run cargo test -p tauri-plugin-polar-license first`);
  }
  return dir;
}
