// The file store of the node entries (node, Bun, Deno, Electron's main process): the native
// library's cache directory and format, so the `polar-license` command line and a native app
// read what node wrote, and the reverse.
//
//   <data dir>/polar-license/<app id>/   (~/.local/share or $XDG_DATA_HOME on Linux,
//                                          ~/Library/Application Support on macOS,
//                                          %LOCALAPPDATA% on Windows), or the `cacheDir` option
//     <slot>.cache                       a record (`polar-license-cache v2`, text)
//     <slot>-seq.cache                   its ledger
//     install-secret                     the per-install secret, 32 raw bytes
//
// The directory is made 0700 and files 0600 (as natively); a write goes to a temp file renamed
// over the target (a reader sees the old or the new file, never half of one). Within a process
// the package's slot locks order the writes; unlike the native store there is no OS lock held
// across processes.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, extname, isAbsolute, join } from 'node:path';
import { randomBytes } from 'node:crypto';

const PREFIX = 'polar-license.';
const SECRET = 'polar-license.install-secret';
const SECRET_FILE = 'install-secret';
/** Cap on a file read (a record is a few KB). */
const MAX_FILE = 1024 * 1024;

/** The platform's local data directory, as the native library finds it; `null` for none. */
function dataDir() {
  const env = globalThis.process?.env ?? {};
  const platform = globalThis.process?.platform;
  if (platform === 'win32') return env.LOCALAPPDATA || null;
  let home = env.HOME;
  if (!home) {
    try {
      home = homedir();
    } catch {
      home = '';
    }
  }
  if (platform === 'darwin') return home ? join(home, 'Library', 'Application Support') : null;
  if (env.XDG_DATA_HOME && isAbsolute(env.XDG_DATA_HOME)) return env.XDG_DATA_HOME;
  return home ? join(home, '.local', 'share') : null;
}

/** An app id from the main script's name, as the native library makes one of the executable's. */
function currentAppId() {
  const main = globalThis.process?.argv?.[1];
  const stem = main ? basename(main, extname(main)) : 'node';
  let id = [...stem].map((c) => (/^[A-Za-z0-9._-]$/.test(c) ? c : '_')).join('').slice(0, 64);
  if (id.startsWith('.')) id = `_${id.slice(1)}`;
  return id || 'app';
}

/** The cache directory for `app` (default: the main script's name), or `null` without a data dir. */
export function defaultDir(app) {
  const base = dataDir();
  return base ? join(base, 'polar-license', app ?? currentAppId()) : null;
}

/**
 * The OS machine id, read as the native library reads it (Linux `/etc/machine-id`, macOS
 * `IOPlatformUUID`, Windows `MachineGuid`): the native seal always carries this machine's
 * identity, and so does every store of the node entries, so a copy of the storage opens to
 * nothing on another machine. `undefined` when the OS has none; throws when it has one that
 * cannot be read (the calls then fail with `cache_error`, as natively: never a seal that
 * silently changes).
 */
export function osMachineId() {
  const usable = (s) => (typeof s === 'string' && s.trim() ? s.trim() : undefined);
  const platform = globalThis.process?.platform;
  if (platform === 'linux' || platform === 'freebsd') {
    for (const path of ['/etc/machine-id', '/var/lib/dbus/machine-id', '/etc/hostid']) {
      try {
        const id = usable(readFileSync(path, 'utf8'));
        if (id) return id;
      } catch (e) {
        if (e?.code !== 'ENOENT') throw new Error(`${path}: ${e?.code ?? e}`);
      }
    }
    return undefined;
  }
  // Programs at their absolute paths (never found through PATH), no console window.
  const quiet = { encoding: 'utf8', timeout: 5000, windowsHide: true, stdio: ['ignore', 'pipe', 'ignore'] };
  const run = (program, args) => {
    try {
      return execFileSync(program, args, quiet);
    } catch (e) {
      throw new Error(`${program}: ${e?.code ?? e?.message ?? e}`);
    }
  };
  if (platform === 'darwin') {
    const out = run('/usr/sbin/ioreg', ['-rd1', '-c', 'IOPlatformExpertDevice']);
    return usable(out.split('\n').find((l) => l.includes('IOPlatformUUID'))?.split('"')[3]);
  }
  if (platform === 'win32') {
    // The 64-bit registry view (/reg:64), as the native library reads it from any process.
    const reg = join(globalThis.process.env.SystemRoot || 'C:\\Windows', 'System32', 'reg.exe');
    const out = run(reg, ['query', 'HKLM\\SOFTWARE\\Microsoft\\Cryptography', '/v', 'MachineGuid', '/reg:64']);
    return usable(out.split('\n').find((l) => l.includes('MachineGuid'))?.trim().split(/\s+/).pop());
  }
  return undefined;
}

/** The file of a storage name: `polar-license.<slot>` is `<slot>.cache`. */
function file(dir, name) {
  if (name === SECRET) return join(dir, SECRET_FILE);
  const slot = name.startsWith(PREFIX) ? name.slice(PREFIX.length) : name;
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(slot)) throw new Error(`not a cache slot name: ${JSON.stringify(name)}`);
  return join(dir, `${slot}.cache`);
}

/** A `{ get, set, remove }` storage over the directory `dir`, in the native format. */
export function fileStore(dir) {
  const ensure = () => mkdir(dir, { recursive: true, mode: 0o700 });
  return {
    dir,
    async get(name) {
      const path = file(dir, name);
      let bytes;
      try {
        const info = await stat(path);
        // Anything but a regular file (a FIFO, a directory) is no cache, read without blocking.
        if (!info.isFile()) return '';
        if (info.size > MAX_FILE) return '';
        bytes = await readFile(path);
      } catch (e) {
        if (e?.code === 'ENOENT' || e?.code === 'ENOTDIR') return null;
        throw e;
      }
      return name === SECRET ? bytes.toString('hex') : bytes.toString('utf8');
    },
    async set(name, text) {
      const path = file(dir, name);
      const bytes = name === SECRET ? Buffer.from(text, 'hex') : Buffer.from(text, 'utf8');
      await ensure();
      const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(8).toString('hex')}.tmp`);
      try {
        await writeFile(tmp, bytes, { mode: 0o600, flag: 'wx' });
        await rename(tmp, path);
      } catch (e) {
        await rm(tmp, { force: true }).catch(() => {});
        throw e;
      }
    },
    async remove(name) {
      await rm(file(dir, name), { force: true });
    },
  };
}
