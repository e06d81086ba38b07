// The file store of the node entries (node, Bun, Deno, Electron's main process): the native
// library's cache directory and format, so the `polar-license` command line and a native app
// read what node wrote, and the reverse.
//
//   <data dir>/polar-license/<app id>/   (~/.local/share or $XDG_DATA_HOME on Linux,
//                                          ~/Library/Application Support on macOS,
//                                          %LOCALAPPDATA% on Windows), or the `cacheDir` option
//     <slot>.cache                       a record (`polar-license-cache v2`, text)
//     <slot>-seq.cache                   its ledger
//     <slot>-clock.cache                 its clock note (cached answers close to its clock)
//     install-secret                     the per-install secret, 32 raw bytes
//
// The directory is made 0700 and files 0600 (as natively); a write goes to a temp file, fsynced
// and renamed over the target (a reader sees the old or the new file, never half of one), then
// the directory is fsynced unless the engine said the write may revert; a clock note (the
// engine says `volatile`) is written in place, with no temp file, rename or fsync: the engine
// refuses one that is torn, and a lost one only means the next answer is durable. Within a process
// the package's slot locks order the writes; unlike the native store there is no OS lock held
// across processes (a record older than the ledger another process stored meanwhile is still
// not written: license.js's `save`; a local trial's first record is created only where none is,
// `create`, and an install secret is kept where another process wrote one, so two processes
// that both read none start one trial, sealed with one secret).
//
// What an import costs at start-up (issue #26): only node:os and node:path are imported up front.
// node:fs is taken on first use from the runtime (process.getBuiltinModule, node >= 20.16: no
// cost) or imported then (its ESM namespace loads node's streams too, about 1 ms);
// node:child_process (about 2 ms) is loaded by osMachineId on macOS and Windows alone; and a
// temp file's name needs no node:crypto (about 2.5 ms): it is created exclusively ('wx'), so its
// random part only keeps writers apart, never secret.
import { homedir } from 'node:os';
import { basename, dirname, extname, isAbsolute, join } from 'node:path';

/** node:fs once loaded (`null` before the first call of `nodeFs`). */
let fs = null;

/** Flushes `fd` to the disk, on the thread pool. */
function fsync(f, fd) {
  return new Promise((resolve, reject) => f.fsync(fd, (e) => (e ? reject(e) : resolve())));
}

/** node:fs, loaded on first use. */
async function nodeFs() {
  fs ??= globalThis.process?.getBuiltinModule?.('node:fs') ?? (await import('node:fs'));
  return fs;
}

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
 * nothing on another machine. Resolves to `undefined` when the OS has none; rejects when it
 * has one that cannot be read (the calls then fail with `cache_error`, as natively: never a
 * seal that silently changes).
 */
export async function osMachineId() {
  const usable = (s) => (typeof s === 'string' && s.trim() ? s.trim() : undefined);
  const platform = globalThis.process?.platform;
  if (platform === 'linux' || platform === 'freebsd') {
    const { readFileSync } = fs ?? (await nodeFs());
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
  if (platform !== 'darwin' && platform !== 'win32') return undefined;
  const { execFileSync } = await import('node:child_process');
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

let tempCount = 0;
/** A temp file's name part: unique within the process (a count), apart from a crashed one's leftovers (random). */
const tempSuffix = () => `${(tempCount++).toString(36)}${Math.random().toString(16).slice(2, 10)}`;

/** The file of a storage name: `polar-license.<slot>` is `<slot>.cache`. */
function file(dir, name) {
  if (name === SECRET) return join(dir, SECRET_FILE);
  const slot = name.startsWith(PREFIX) ? name.slice(PREFIX.length) : name;
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(slot)) throw new Error(`not a cache slot name: ${JSON.stringify(name)}`);
  return join(dir, `${slot}.cache`);
}

/** What identifies a file's content without reading it: device, inode, size, mtime and ctime (ns). */
const stampOf = (info) => `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;

/**
 * The bytes of the regular file at `path` (at most MAX_FILE + 1 of them), `''` for anything
 * else there (a FIFO, a directory, a device: opened without blocking, never read), with the
 * stamp of what was read. Synchronous: a record is a few KB on a local disk, and four
 * round trips through libuv's thread pool per file cost a cached check most of its time.
 */
function readRegular(path) {
  const { closeSync, constants, fstatSync, openSync, readSync } = fs;
  const fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const info = fstatSync(fd, { bigint: true });
    if (!info.isFile() || info.size > BigInt(MAX_FILE)) return [null, ''];
    const buffer = Buffer.allocUnsafe(Number(info.size) + 1);
    let size = 0;
    for (;;) {
      const n = readSync(fd, buffer, size, buffer.length - size, null);
      if (n === 0) break;
      size += n;
      if (size === buffer.length) return [null, ''];
    }
    // A file written less than a second ago is not remembered (as natively): a write in place
    // (a clock note) inside the file system's timestamp granularity, at the same size, would
    // leave its stamp as it was. Any later write moves the times of one written before.
    const settled = Date.now() - Number(info.mtimeMs) >= 1000;
    return [settled ? stampOf(info) : null, buffer.subarray(0, size)];
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `bytes` to a temp file beside `path` (created exclusively, fsynced), then `put(tmp)`
 * moves it there (a rename, or a link that may refuse: its result is resolved); the directory
 * is fsynced when `durable` (Windows opens no directory; NTFS journals the rename). A temp file
 * left by a failure is removed.
 */
async function place(f, path, bytes, durable, put) {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${tempSuffix()}.tmp`);
  let placed;
  try {
    const fd = f.openSync(tmp, 'wx', 0o600);
    try {
      f.writeFileSync(fd, bytes);
      await fsync(f, fd);
    } finally {
      f.closeSync(fd);
    }
    placed = put(tmp);
  } catch (e) {
    try {
      f.rmSync(tmp, { force: true });
    } catch {
      // Nothing more to undo.
    }
    throw e;
  }
  if (placed !== false && durable && globalThis.process?.platform !== 'win32') {
    const fd = f.openSync(dirname(path), 'r');
    try {
      await fsync(f, fd);
    } finally {
      f.closeSync(fd);
    }
  }
  return placed;
}

/**
 * Hard-links the temp file `tmp` to `path`, which fails when `path` exists: then it is left
 * as it is when `keep()` says so (false), else replaced. A file system with no hard links
 * (FAT) has it renamed into place. The temp file is gone either way.
 */
function linked(f, tmp, path, keep) {
  try {
    f.linkSync(tmp, path);
  } catch (e) {
    if (e?.code === 'EEXIST' && keep()) {
      f.rmSync(tmp, { force: true });
      return false;
    }
    if (e?.code !== 'EEXIST' && !['EPERM', 'ENOTSUP', 'ENOSYS', 'EOPNOTSUPP'].includes(e?.code)) throw e;
    f.renameSync(tmp, path);
    return true;
  }
  f.rmSync(tmp, { force: true });
  return true;
}

/**
 * A `{ get, set, remove }` storage over the directory `dir`, in the native format. A file read
 * again whose identity and times have not changed (device, inode, size, modification and
 * change times: a write or a rename changes the change time, which no one can set back) is
 * answered from memory after one `stat`, as the native file store does: a warm check reads
 * four such files (a file written less than a second before it was read is not remembered: a
 * clock note written in place may keep its stamp). Any change is read anew at once.
 */
export function fileStore(dir) {
  /** path -> [stamp, text] of the files read lately (a handful: a record, its ledger and clock note, the secret). */
  const seen = new Map();
  const paths = new Map();
  const read = (name) => {
    const path = paths.get(name) ?? file(dir, name);
    if (paths.size < 16) paths.set(name, path);
    try {
      // Not remembered: no `stat` before the read (its `fstat` tells a regular file).
      const known = seen.get(path);
      if (known) {
        const info = fs.statSync(path, { bigint: true, throwIfNoEntry: false });
        if (info === undefined) return null;
        // Anything but a regular file (a FIFO, a directory) is no cache, read without blocking.
        if (!info.isFile() || info.size > BigInt(MAX_FILE)) return '';
        if (known[0] === stampOf(info)) return known[1];
      }
      const [stamp, bytes] = readRegular(path);
      const text = typeof bytes === 'string' ? bytes : name === SECRET ? bytes.toString('hex') : bytes.toString('utf8');
      // Unix only, as natively (elsewhere the inode and change time are not what they are here).
      if (stamp !== null && globalThis.process?.platform !== 'win32') {
        if (seen.size >= 16) seen.clear();
        seen.set(path, [stamp, text]);
      }
      return text;
    } catch (e) {
      if (e?.code === 'ENOENT' || e?.code === 'ENOTDIR') return null;
      throw e;
    }
  };
  return {
    dir,
    get(name) {
      try {
        return fs ? read(name) : nodeFs().then(() => read(name));
      } catch (e) {
        return Promise.reject(e);
      }
    },
    // As natively: the temp file is written, fsynced and renamed over the file; `durable`
    // (every write but a cached answer's ledger) fsyncs the directory too, so that the rename
    // survives a power cut (Windows opens no directory; NTFS journals the rename). The small
    // steps are synchronous (a record of a few KB costs far less than the thread pool's round
    // trips of mkdir, open, write, close and rename); the fsyncs, which wait for the disk,
    // run on the thread pool so that the event loop goes on meanwhile.
    async set(name, text, durable = true) {
      const path = file(dir, name);
      const bytes = name === SECRET ? Buffer.from(text, 'hex') : Buffer.from(text, 'utf8');
      const f = fs ?? (await nodeFs());
      f.mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (durable === 'volatile' && name !== SECRET) {
        seen.delete(path);
        // A FIFO planted there fails at once (no reader) instead of blocking.
        const { O_WRONLY, O_CREAT, O_NONBLOCK } = f.constants;
        const fd = f.openSync(path, O_WRONLY | O_CREAT | (O_NONBLOCK ?? 0), 0o600);
        try {
          if (!f.fstatSync(fd).isFile()) throw new Error(`not a regular file: ${path}`);
          f.writeSync(fd, bytes, 0, bytes.length, 0);
          f.ftruncateSync(fd, bytes.length);
        } finally {
          f.closeSync(fd);
        }
        return;
      }
      // The install secret is made once per install: another process's, written since this
      // one read none (node has no lock across processes), is kept (a file of 32 bytes), and
      // license.js reads it back; one of another size is replaced.
      const keep = () => name === SECRET && f.statSync(path).size === 32;
      await place(f, path, bytes, durable, (tmp) => (name === SECRET ? linked(f, tmp, path, keep) : f.renameSync(tmp, path)));
    },
    // The first record of a slot that an install must have once (the local trial's): written
    // as `set` writes it, then hard-linked into place instead of renamed, which fails when the
    // file exists: another process wrote it since this one read none. Resolves false then,
    // and the caller reads what is there.
    async create(name, text) {
      const path = file(dir, name);
      const f = fs ?? (await nodeFs());
      f.mkdirSync(dir, { recursive: true, mode: 0o700 });
      return place(f, path, Buffer.from(text, 'utf8'), true, (tmp) => linked(f, tmp, path, () => true));
    },
    async remove(name) {
      const { rmSync } = fs ?? (await nodeFs());
      rmSync(file(dir, name), { force: true });
    },
  };
}

/**
 * Signed mode's Ed25519 in node, Bun and Deno: node:crypto's `verify` (node's own Ed25519,
 * stable since node 12; node 20's WebCrypto Ed25519 prints an ExperimentalWarning on first
 * use, which an app's users would see). Loaded on the first lease only.
 */
export async function nodeEd25519() {
  const crypto = globalThis.process?.getBuiltinModule?.('node:crypto') ?? (await import('node:crypto'));
  const keys = new Map();
  return (key, message, signature) => {
    const x = btoa(String.fromCharCode(...key)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    let object = keys.get(x);
    if (!object) {
      object = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
      if (keys.size >= 8) keys.clear();
      keys.set(x, object);
    }
    return crypto.verify(null, message, object, signature);
  };
}
