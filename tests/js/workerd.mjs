// The Workers runtime for the relay suites (tests/js/relay.test.mjs, relay-store.test.mjs,
// relay-parity.test.mjs): the `workerd` npm package, offline, started in a directory that holds
// its config.capnp; and the installed package's relay under it.
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE_DIR } from './emulator.mjs';

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
    // Its process id (the hostile table reads its CPU time from /proc).
    pid: child.pid,
    output: () => output,
    // A workerd still running 15 s after SIGTERM (a request stuck in the worker holds it) is
    // killed and the close rejects, naming it: a test never waits on it for ever.
    close: async () => {
      const gone = () => child.exitCode !== null || child.signalCode !== null;
      if (!gone()) {
        await new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`workerd was still running 15 s after SIGTERM: killed. ${output.slice(-2000)}`));
          }, 15_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }).finally(() => rm(dir, { recursive: true, force: true }));
        return;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The worker.js of an app whose relay keeps its store in a Durable Object: the token and the
 * signing key from its bindings, Polar at `POLAR_URL`, and `more` (the source of further
 * options) for the rest.
 */
export const storeWorker = (more) => `import { relayStore, relayWorker } from './polar-license/ENTRY';
const optionsOf = (env) => ({
  accessToken: env.POLAR_ACCESS_TOKEN,
  signingKey: env.RELAY_SIGNING_KEY,
  baseUrl: 'POLAR_URL',
  ${more}
});
export const PolarRelayStore = relayStore(optionsOf);
export default relayWorker(optionsOf);
`;

/**
 * workerd's config for the relay: the worker, the package's files as modules, the Polar at
 * `polarHost` as the outbound, `bindings` (name → text) as text bindings, and with `store`
 * ({ dir, uniqueKey }) a `PolarRelayStore` Durable Object on that disk, bound as
 * `POLAR_RELAY_STORE`.
 */
function relayCapnp({ port, polarHost, files, bindings, store }) {
  const esm = (name) => `(name = "polar-license/${name}", esModule = embed "${name}")`;
  const text = Object.entries(bindings).map(([name, value]) => `(name = "${name}", text = "${value}"),`);
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .relay),
    (name = "polar", external = (address = "${polarHost}", http = ())),
    ${store ? `(name = "store-disk", disk = (path = "${store.dir}", writable = true)),` : ''}
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const relay :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    ${files.filter((f) => f.endsWith('.js')).map(esm).join(',\n    ')},
    (name = "polar-license/polar_license_relay_bg.wasm", wasm = embed "polar_license_relay_bg.wasm"),
  ],
  compatibilityDate = "2026-11-01",
  ${store ? `durableObjectNamespaces = [(className = "PolarRelayStore", uniqueKey = "${store.uniqueKey}")],\n  durableObjectStorage = (localDisk = "store-disk"),` : ''}
  bindings = [
    ${text.join('\n    ')}
    ${store ? '(name = "POLAR_RELAY_STORE", durableObjectNamespace = "PolarRelayStore"),' : ''}
  ],
  globalOutbound = "polar",
);
`;
}

/**
 * The installed package's relay under workerd on `port`: its files that the `workerd` condition
 * names, copied into a fresh directory with `worker` (an app's worker.js, where `ENTRY` stands
 * for that entry and `POLAR_URL` for `polarUrl`), configured as `relayCapnp` says; resolves as
 * `runWorkerd` does once `probe` answers.
 */
export async function relayUnderWorkerd({ port, worker, polarUrl, bindings, store, probe }) {
  const manifest = JSON.parse(await readFile(join(PACKAGE_DIR, 'package.json'), 'utf8'));
  const dir = await mkdtemp(join(tmpdir(), 'polar-license-workerd-'));
  const entry = manifest.exports['./relay'].workerd.replace('./', '');
  const files = [entry, 'relay-handler.js', 'polar_license_relay.js', 'polar_license_relay_bg.wasm'];
  for (const f of files) await copyFile(join(PACKAGE_DIR, f), join(dir, f));
  await writeFile(join(dir, 'worker.js'), worker.replace('ENTRY', entry).replace('POLAR_URL', polarUrl));
  const polarHost = new URL(polarUrl).host;
  await writeFile(join(dir, 'config.capnp'), relayCapnp({ port, polarHost, files, bindings, store }));
  return runWorkerd(dir, port, probe);
}
