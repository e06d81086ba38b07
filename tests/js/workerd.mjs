// The Workers runtime for the relay suites (tests/js/relay.test.mjs, relay-store.test.mjs): the
// `workerd` npm package, offline, started in a directory that holds its config.capnp.
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WORKERD = join(ROOT, 'scripts', 'npm', 'node_modules', '.bin', 'workerd');

/** A port nothing listens on now. */
export async function freePort() {
  const server = createNetServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Runs `workerd serve config.capnp` in `dir` until `probe` (a URL path) answers below 500 on
 * `port` (60 s at most); `close()` stops it and removes `dir`.
 */
export async function runWorkerd(dir, port, probe) {
  const child = spawn(WORKERD, ['serve', 'config.capnp', '--verbose'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`workerd exited (${child.exitCode}): ${output}`);
    const up = await fetch(`${url}${probe}`, { method: 'OPTIONS' }).then(
      (r) => r.status < 500,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) throw new Error(`workerd did not answer within 60 s: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    output: () => output,
    close: async () => {
      child.kill();
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
