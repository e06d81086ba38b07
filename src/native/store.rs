//! Where cache records live (native only): the [`Store`] trait, a [`FileStore`] and a
//! [`MemoryStore`].
//!
//! A store keeps opaque bytes per slot ([`crate::cache::slot_name`]), one per-install random
//! secret, and a per-slot lock. Callers hold [`Store::lock`] around "load, maybe ask the
//! server, save" so two processes never race or send the same request twice.
//!
//! Every IO failure is [`Error::Cache`]; nothing here panics.

use crate::cache::hex;
use crate::error::Error;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

pub use crate::cache::INSTALL_SECRET_LEN;

/// A held slot lock; dropping it releases the lock.
#[must_use = "the lock is released when this is dropped"]
pub struct SlotLock {
    _guard: Box<dyn Send>,
}

impl SlotLock {
    /// Wraps whatever releases the lock when dropped (for stores written elsewhere).
    pub fn new(guard: impl Send + 'static) -> SlotLock {
        SlotLock {
            _guard: Box::new(guard),
        }
    }

    /// A lock that locks nothing, for stores that cannot be shared (a single-threaded host).
    pub fn none() -> SlotLock {
        SlotLock::new(())
    }
}

impl std::fmt::Debug for SlotLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlotLock")
    }
}

/// Storage for cache records. Object safe: the C and JS faces plug their own in.
///
/// Slots are names made of ASCII letters, digits, `-` and `_` (1 to 64 characters).
pub trait Store: Send + Sync {
    /// The bytes stored in `slot`, or `None` when there are none.
    fn load(&self, slot: &str) -> Result<Option<Vec<u8>>, Error>;
    /// Replaces the bytes in `slot`, atomically: a reader (or a crash) sees the old bytes or
    /// the new ones, never a mix.
    fn save(&self, slot: &str, bytes: &[u8]) -> Result<(), Error>;
    /// Replaces the bytes in `slot` as [`Store::save`] does (atomically, the new bytes whole
    /// before they replace the old ones), except that the replacement need not survive a
    /// power cut: afterwards the slot may hold the bytes it had before. The core uses it for
    /// one write only, the ledger of a cached answer's record (already stored durably), where
    /// the ledger coming back one number lower still trusts that record. The default is
    /// [`Store::save`].
    fn save_revertible(&self, slot: &str, bytes: &[u8]) -> Result<(), Error> {
        self.save(slot, bytes)
    }
    /// Replaces the bytes in `slot` with no promise at all about a crash or a power cut:
    /// afterwards the slot may hold the old bytes, the new ones, a mix or nothing. The core
    /// uses it for clock notes only ([`crate::flow::Keep::Volatile`]), which it refuses
    /// when they are torn; a reader holding the slot's lock sees the new bytes whole. The
    /// default is [`Store::save`].
    fn save_volatile(&self, slot: &str, bytes: &[u8]) -> Result<(), Error> {
        self.save(slot, bytes)
    }
    /// Removes `slot`; removing a missing slot is not an error.
    fn remove(&self, slot: &str) -> Result<(), Error>;
    /// The per-install random secret, created on first use and the same ever after.
    fn install_secret(&self) -> Result<Vec<u8>, Error>;
    /// Takes the lock of `slot`, waiting for it; held until the returned value is dropped.
    /// Not reentrant: taking it twice in one thread waits forever.
    fn lock(&self, slot: &str) -> Result<SlotLock, Error>;
    /// Takes the lock of `slot` if no one holds it, without waiting: `None` when it is held.
    /// A check holds such a lock while it asks Polar, and the other checks of the key answer
    /// from the cache meanwhile instead of queueing behind a hung server. The default waits
    /// ([`Store::lock`]): a store without it serializes those checks, as before.
    fn try_lock(&self, slot: &str) -> Result<Option<SlotLock>, Error> {
        self.lock(slot).map(Some)
    }
}

/// Rejects slot names that are not plain file names.
pub fn check_slot(slot: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&slot.len())
        && slot
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "slot",
            "must be 1-64 ASCII letters, digits, '-' or '_'",
        ))
    }
}

fn random_bytes(n: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| cache_err("random secret", e))?;
    Ok(buf)
}

fn cache_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Cache {
        detail: format!("{what}: {e}"),
    }
}

fn io_err(what: &str, path: &Path, e: io::Error) -> Error {
    Error::Cache {
        detail: format!("{what} {}: {e}", path.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

#[derive(Default)]
struct MemoryInner {
    slots: Mutex<HashMap<String, Vec<u8>>>,
    locked: Mutex<HashSet<String>>,
    released: Condvar,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these mutexes is always consistent between statements.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A store in memory, for tests and for apps that want no files. Each instance has its own
/// random install secret; its locks are in-process only.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<MemoryInner>,
    secret: Vec<u8>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store with a fresh random install secret.
    pub fn new() -> Result<MemoryStore, Error> {
        Ok(MemoryStore::with_secret(random_bytes(INSTALL_SECRET_LEN)?))
    }

    /// An empty store with the given install secret (for tests that need a fixed one).
    pub fn with_secret(secret: impl Into<Vec<u8>>) -> MemoryStore {
        MemoryStore {
            inner: Arc::default(),
            secret: secret.into(),
        }
    }
}

struct MemoryLock {
    inner: Arc<MemoryInner>,
    slot: String,
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        relock(&self.inner.locked).remove(&self.slot);
        self.inner.released.notify_all();
    }
}

impl Store for MemoryStore {
    fn load(&self, slot: &str) -> Result<Option<Vec<u8>>, Error> {
        check_slot(slot)?;
        Ok(relock(&self.inner.slots).get(slot).cloned())
    }

    fn save(&self, slot: &str, bytes: &[u8]) -> Result<(), Error> {
        check_slot(slot)?;
        relock(&self.inner.slots).insert(slot.to_string(), bytes.to_vec());
        Ok(())
    }

    fn remove(&self, slot: &str) -> Result<(), Error> {
        check_slot(slot)?;
        relock(&self.inner.slots).remove(slot);
        Ok(())
    }

    fn install_secret(&self) -> Result<Vec<u8>, Error> {
        Ok(self.secret.clone())
    }

    fn lock(&self, slot: &str) -> Result<SlotLock, Error> {
        check_slot(slot)?;
        let mut locked = relock(&self.inner.locked);
        while locked.contains(slot) {
            locked = self
                .inner
                .released
                .wait(locked)
                .unwrap_or_else(PoisonError::into_inner);
        }
        locked.insert(slot.to_string());
        Ok(SlotLock::new(MemoryLock {
            inner: Arc::clone(&self.inner),
            slot: slot.to_string(),
        }))
    }

    fn try_lock(&self, slot: &str) -> Result<Option<SlotLock>, Error> {
        check_slot(slot)?;
        let mut locked = relock(&self.inner.locked);
        if locked.contains(slot) {
            return Ok(None);
        }
        locked.insert(slot.to_string());
        Ok(Some(SlotLock::new(MemoryLock {
            inner: Arc::clone(&self.inner),
            slot: slot.to_string(),
        })))
    }
}

// ---------------------------------------------------------------------------------------------
// Files

/// The install secret's file name inside the store directory.
pub const INSTALL_SECRET_FILE: &str = "install-secret";

/// A store in a directory: `<slot>.cache` per record, `<slot>.lock` per lock,
/// `install-secret` beside them.
///
/// * The directory is created on first use (mode 0700 on unix); files are created 0600.
/// * [`Store::save`] writes `.<slot>.<pid>.<random>.tmp`, fsyncs it, renames it over
///   `<slot>.cache` and fsyncs the directory, under a short internal write lock
///   (`.<slot>.wlock`); temp files left by a crashed writer are removed by the next save.
///   [`Store::save_revertible`] leaves out the directory's fsync; [`Store::save_volatile`]
///   (clock notes) overwrites `<slot>.cache` in place: no temp file, no rename, no fsync.
/// * [`Store::lock`] is an OS file lock ([`File::lock`]) on `<slot>.lock`, held across
///   processes and threads (each call opens its own handle) and released by the OS if the
///   process dies. Lock files are never deleted (deleting them would let two holders in).
/// * A read-only directory (a read-only file system, a locked-down profile) can still be
///   read: a lock file that cannot be created is opened read-only, or, when there is none,
///   no one can write the records either and the lock is a no-op. Saves then fail, and the
///   caller says the cache was not refreshed.
/// * A record path that is not a regular file (a FIFO, a directory, a device planted there)
///   reads as corrupt bytes, without blocking: it is no cache, and the next save replaces it.
/// * On unix, a small file read again whose identity and times have not changed (device,
///   inode, size, modification and change times: a write or a rename changes the change
///   time, which no one can set back) is answered from memory, one `stat` instead of an
///   open, a read and a close: a warm check reads four such files. A file written less than
///   a second before it was read is not remembered (a write in place at the same size, inside
///   the timestamp granularity, would keep its stamp).
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    seen: Arc<Seen>,
}

/// A file's content as read, with the stamp it had.
type Known = (Stamp, Arc<[u8]>);

/// Small files read lately, by path.
#[derive(Default)]
struct Seen(Mutex<HashMap<PathBuf, Known>>);

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seen(..)")
    }
}

/// At most this many files, of at most this many bytes each, are remembered.
const SEEN_FILES: usize = 64;
const SEEN_BYTES: usize = 64 * 1024;

/// What identifies a file's content without reading it (unix: `None` elsewhere, where every
/// read reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp([i64; 7]);

impl Stamp {
    #[cfg(unix)]
    fn of(meta: &fs::Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Some(Stamp([
            n(meta.dev()),
            n(meta.ino()),
            n(meta.size()),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        ]))
    }

    #[cfg(not(unix))]
    fn of(_meta: &fs::Metadata) -> Option<Stamp> {
        None
    }
}

impl FileStore {
    /// A store in `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> FileStore {
        FileStore {
            dir: dir.into(),
            seen: Arc::default(),
        }
    }

    /// A store in [`FileStore::default_dir`] for this executable.
    pub fn open_default() -> Result<FileStore, Error> {
        Ok(FileStore::new(FileStore::default_dir()?))
    }

    /// The default directory of the running application: [`FileStore::dir_for_app`] with
    /// the executable's file name (without extension) as the application id. Each app has
    /// its own records: another vendor's app, or the `polar-license` command run without
    /// `--cache-dir`, never reads or writes this app's cache by accident.
    pub fn default_dir() -> Result<PathBuf, Error> {
        FileStore::dir_for_app(&current_app_id()?)
    }

    /// The platform's local data directory, `polar-license`, then `app` (`~/.local/share/…`
    /// on Linux, `~/Library/Application Support/…` on macOS, `%LOCALAPPDATA%\…` on Windows).
    /// `app` is 1 to 64 ASCII letters, digits, `.`, `-` or `_`, not starting with a dot (a
    /// reverse-DNS id such as `com.example.editor` is a good choice).
    pub fn dir_for_app(app: &str) -> Result<PathBuf, Error> {
        check_app_id(app)?;
        dirs::data_local_dir()
            .map(|d| d.join("polar-license").join(app))
            .ok_or_else(|| Error::Cache {
                detail: "no local data directory on this platform; set a cache directory"
                    .to_string(),
            })
    }

    /// The directory this store uses.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `slot`'s record.
    pub fn record_path(&self, slot: &str) -> PathBuf {
        self.path_of(&[slot, ".cache"])
    }

    /// `dir/<parts joined>`, allocated once at its full length (a warm check builds four
    /// such paths; `Path::join` of a `format!` reallocated each of them).
    fn path_of(&self, parts: &[&str]) -> PathBuf {
        let len = self.dir.as_os_str().len() + 1 + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut path = PathBuf::with_capacity(len);
        path.push(&self.dir);
        let mut rest = parts.iter();
        if let Some(first) = rest.next() {
            path.push(first);
        }
        for part in rest {
            path.as_mut_os_string().push(part);
        }
        path
    }

    fn ensure_dir(&self) -> Result<(), Error> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&self.dir)
            .map_err(|e| io_err("create cache directory", &self.dir, e))
    }

    /// Opens the lock file `name` to lock it: `None` when the directory is read-only and
    /// has no such file (no one can write its records either: the lock is a no-op).
    fn open_lock_file(&self, name: &str) -> Result<Option<File>, Error> {
        let path = self.path_of(&[name]);
        let open = || {
            private_options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        // The directory exists on every call but the first: create it only when missing
        // (creating it first each time cost a cached check two extra syscalls).
        let opened = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.ensure_dir() {
                Ok(()) => open(),
                Err(_) if !self.dir.is_dir() => return Ok(None),
                Err(e) => return Err(e),
            },
            opened => opened,
        };
        match opened {
            Ok(file) => Ok(Some(file)),
            Err(e) if read_only(&e) => match File::open(&path) {
                Ok(file) => Ok(Some(file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err("open lock", &path, e)),
            },
            Err(e) => Err(io_err("open lock", &path, e)),
        }
    }

    /// Takes the lock file `name`, waiting for it.
    fn lock_file(&self, name: &str) -> Result<SlotLock, Error> {
        match self.open_lock_file(name)? {
            Some(file) => {
                file.lock()
                    .map_err(|e| io_err("lock", &self.dir.join(name), e))?;
                Ok(SlotLock::new(file))
            }
            None => Ok(SlotLock::none()),
        }
    }

    /// Writes `bytes` to a new temp file and renames it to `target`, durably.
    fn replace(&self, prefix: &str, target: &Path, bytes: &[u8]) -> Result<(), Error> {
        self.replace_with(prefix, target, bytes, true)
    }

    /// Writes `bytes` to a new temp file, fsyncs it and renames it to `target`; with
    /// `durable`, fsyncs the directory too, so that the rename itself survives a power cut.
    fn replace_with(
        &self,
        prefix: &str,
        target: &Path,
        bytes: &[u8],
        durable: bool,
    ) -> Result<(), Error> {
        let suffix = hex(&random_bytes(8)?);
        let tmp = self
            .dir
            .join(format!(".{prefix}.{}.{suffix}.tmp", std::process::id()));
        let written = (|| {
            let mut file = private_options().write(true).create_new(true).open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            rename_over(&tmp, target)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write", target, e));
        }
        if !durable {
            return Ok(());
        }
        sync_dir(&self.dir).map_err(|e| io_err("sync directory", &self.dir, e))
    }

    /// [`Store::save`] and [`Store::save_revertible`].
    fn save_with(&self, slot: &str, bytes: &[u8], durable: bool) -> Result<(), Error> {
        check_slot(slot)?;
        let _write_lock = self.lock_file(&format!(".{slot}.wlock"))?;
        self.sweep(slot);
        self.replace_with(slot, &self.record_path(slot), bytes, durable)
    }

    /// Removes temp files a crashed writer of `slot` left behind (the caller holds the
    /// slot's write lock, so no live writer owns one).
    fn sweep(&self, slot: &str) {
        let prefix = format!(".{slot}.");
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The bytes of the regular file at `path`, at most `cap` of them (`None`: no file).
    /// Anything else there (a FIFO, a directory, a device) reads as no bytes, at once, never
    /// opened.
    fn read(&self, path: &Path, cap: usize) -> io::Result<Option<Vec<u8>>> {
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !meta.is_file() {
            return Ok(Some(Vec::new()));
        }
        if let Some(stamp) = Stamp::of(&meta) {
            let seen = relock(&self.seen.0);
            if let Some((known, bytes)) = seen.get(path) {
                if *known == stamp {
                    return Ok(Some(bytes.to_vec()));
                }
            }
        }
        let (stamp, bytes) = match read_capped(path, cap) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if let Some(stamp) = stamp.filter(|_| bytes.len() <= SEEN_BYTES) {
            let mut seen = relock(&self.seen.0);
            if seen.len() >= SEEN_FILES {
                seen.clear();
            }
            seen.insert(path.to_path_buf(), (stamp, Arc::from(bytes.as_slice())));
        }
        Ok(Some(bytes))
    }

    fn read_secret(&self, path: &Path) -> Result<Option<Vec<u8>>, Error> {
        match self
            .read(path, INSTALL_SECRET_LEN + 1)
            .map(Option::unwrap_or_default)
        {
            Ok(bytes) if bytes.len() == INSTALL_SECRET_LEN => Ok(Some(bytes)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", path, e)),
        }
    }
}

/// Checks an application id: a plain, portable directory name.
pub fn check_app_id(app: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&app.len())
        && !app.starts_with('.')
        && app
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "app_id",
            "must be 1-64 ASCII letters, digits, '.', '-' or '_', not starting with '.'",
        ))
    }
}

/// The running executable's file name without its extension, made a valid application id
/// (other characters become `_`).
fn current_app_id() -> Result<String, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Cache {
        detail: format!(
            "cannot name the running application ({e}); set an app id or a cache directory"
        ),
    })?;
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if id.starts_with('.') {
        id.replace_range(..1, "_");
    }
    if id.is_empty() {
        id.push_str("app");
    }
    Ok(id)
}

fn private_options() -> OpenOptions {
    #[allow(unused_mut)] // mutated on unix only
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Renames `from` over `to`. On Windows, replacing a file that another process has open at
/// that instant (a concurrent check reading the record, an antivirus scan) fails with "access
/// denied" although nothing is wrong: the rename is tried again for up to about 250 ms.
#[cfg(windows)]
fn rename_over(from: &Path, to: &Path) -> io::Result<()> {
    let mut wait = std::time::Duration::from_millis(1);
    for _ in 0..8 {
        match fs::rename(from, to) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => std::thread::sleep(wait),
            done => return done,
        }
        wait = wait.saturating_mul(2);
    }
    fs::rename(from, to)
}

#[cfg(not(windows))]
fn rename_over(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)
}
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Windows cannot open a directory as a file; NTFS journals the rename itself.
    Ok(())
}

/// `true` for the errors of a directory that cannot be written.
fn read_only(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
    )
}

/// Opens `path` for reading without ever blocking on it (a FIFO planted there would block a
/// plain open until a writer comes).
fn open_nonblocking(path: &Path) -> io::Result<File> {
    #[allow(unused_mut)] // mutated on unix only
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// The bytes of the regular file at `path`, at most `cap` of them, with the stamp of what was
/// read. Anything else there (a FIFO, a directory, a device, put there since it was looked
/// at) reads as no bytes, at once.
fn read_capped(path: &Path, cap: usize) -> io::Result<(Option<Stamp>, Vec<u8>)> {
    let file = match open_nonblocking(path) {
        Ok(file) => file,
        // Windows refuses to open a directory as a file.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && path.is_dir() => {
            return Ok((None, Vec::new()))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok((None, Vec::new()));
    }
    // A file written less than a second ago is not remembered: a write in place (a clock
    // note) within the file system's timestamp granularity, at the same size, would leave
    // the stamp as it was. One written before is remembered: any later write moves its times.
    let settled = meta
        .modified()
        .ok()
        .and_then(|at| at.elapsed().ok())
        .is_some_and(|age| age >= std::time::Duration::from_secs(1));
    // Room for a typical record (about 2 KB) in one allocation and one read.
    let mut bytes = Vec::with_capacity(cap.min(8 * 1024));
    file.take(u64::try_from(cap).unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)?;
    Ok((Stamp::of(&meta).filter(|_| settled), bytes))
}

impl Store for FileStore {
    fn load(&self, slot: &str) -> Result<Option<Vec<u8>>, Error> {
        check_slot(slot)?;
        let path = self.record_path(slot);
        // One byte over the cap is enough for the decoder to refuse an oversized record.
        self.read(&path, crate::cache::MAX_RECORD_BYTES + 1)
            .map_err(|e| io_err("read", &path, e))
    }

    fn save(&self, slot: &str, bytes: &[u8]) -> Result<(), Error> {
        self.save_with(slot, bytes, true)
    }

    /// The temp file is still fsynced before the rename (the slot never holds a torn or empty
    /// file after a power cut); only the directory's fsync after it is left out.
    fn save_revertible(&self, slot: &str, bytes: &[u8]) -> Result<(), Error> {
        self.save_with(slot, bytes, false)
    }

    /// Overwrites `<slot>.cache` in place (created if missing): one open, write and close;
    /// no temp file, no rename, no fsync.
    fn save_volatile(&self, slot: &str, bytes: &[u8]) -> Result<(), Error> {
        check_slot(slot)?;
        let path = self.record_path(slot);
        let written = (|| {
            let mut options = private_options();
            options.write(true).create(true).truncate(false);
            // A FIFO planted there fails at once (no reader) instead of blocking the check.
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.custom_flags(libc::O_NONBLOCK);
            }
            let mut file = options.open(&path)?;
            if !file.metadata()?.is_file() {
                return Err(io::Error::other("not a regular file"));
            }
            file.write_all(bytes)?;
            file.set_len(u64::try_from(bytes.len()).unwrap_or(u64::MAX))
        })();
        relock(&self.seen.0).remove(&path);
        written.map_err(|e| io_err("write", &path, e))
    }

    fn remove(&self, slot: &str) -> Result<(), Error> {
        check_slot(slot)?;
        let path = self.record_path(slot);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("remove", &path, e)),
        }
        sync_dir(&self.dir).map_err(|e| io_err("sync directory", &self.dir, e))
    }

    fn install_secret(&self) -> Result<Vec<u8>, Error> {
        let path = self.path_of(&[INSTALL_SECRET_FILE]);
        if let Some(secret) = self.read_secret(&path)? {
            return Ok(secret);
        }
        // Create it under a lock: whoever comes second reads the first one's secret. A
        // secret of the wrong length (corrupt) is replaced, which only invalidates caches.
        let _lock = self.lock_file(".install-secret.lock")?;
        if let Some(secret) = self.read_secret(&path)? {
            return Ok(secret);
        }
        let secret = random_bytes(INSTALL_SECRET_LEN)?;
        self.replace(INSTALL_SECRET_FILE, &path, &secret)?;
        Ok(secret)
    }

    fn lock(&self, slot: &str) -> Result<SlotLock, Error> {
        check_slot(slot)?;
        self.lock_file(&[slot, ".lock"].concat())
    }

    fn try_lock(&self, slot: &str) -> Result<Option<SlotLock>, Error> {
        check_slot(slot)?;
        let name = format!("{slot}.lock");
        let Some(file) = self.open_lock_file(&name)? else {
            return Ok(Some(SlotLock::none()));
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(SlotLock::new(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err("lock", &self.dir.join(name), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "polar-license-store-{name}-{}-{}",
            std::process::id(),
            hex(&random_bytes(4).unwrap_or_default())
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// Runs `test` with a new temporary directory and a store in it, then removes the
    /// directory (whatever the test's result).
    fn with_store(
        name: &str,
        test: impl FnOnce(&Path, &FileStore) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let dir = temp_dir(name);
        let result = test(&dir, &FileStore::new(&dir));
        let _ = fs::remove_dir_all(&dir);
        result
    }

    #[test]
    fn slots_must_be_plain_names() {
        assert!(check_slot("v1-00ff").is_ok());
        assert!(check_slot("").is_err());
        assert!(check_slot("../x").is_err());
        assert!(check_slot("a.b").is_err());
        assert!(check_slot(&"a".repeat(65)).is_err());
    }

    #[test]
    fn file_store_roundtrips_with_private_files() -> Result<(), Error> {
        with_store("roundtrip", |dir, store| {
            assert_eq!(store.load("s")?, None);
            store.save("s", b"one")?;
            store.save("s", b"two")?;
            assert_eq!(store.load("s")?, Some(b"two".to_vec()));
            let secret = store.install_secret()?;
            assert_eq!(secret.len(), INSTALL_SECRET_LEN);
            assert_eq!(FileStore::new(dir).install_secret()?, secret);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o777).ok();
                assert_eq!(mode(dir), Some(0o700));
                assert_eq!(mode(&store.record_path("s")), Some(0o600));
                assert_eq!(mode(&dir.join(INSTALL_SECRET_FILE)), Some(0o600));
            }
            store.remove("s")?;
            store.remove("s")?;
            assert_eq!(store.load("s")?, None);
            Ok(())
        })
    }

    #[test]
    fn a_revertible_save_replaces_as_a_save_does() -> Result<(), Error> {
        with_store("revertible", |dir, store| {
            store.save_revertible("s", b"one")?;
            store.save("s", b"two")?;
            store.save_revertible("s", b"three")?;
            assert_eq!(store.load("s")?, Some(b"three".to_vec()));
            assert_eq!(FileStore::new(dir).load("s")?, Some(b"three".to_vec()));
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode =
                    fs::metadata(store.record_path("s")).map(|m| m.permissions().mode() & 0o777);
                assert_eq!(mode.ok(), Some(0o600));
            }
            // No temp file left behind, and a bad slot name is refused as by save.
            let names: Vec<String> = fs::read_dir(dir)
                .map_err(|e| cache_err("r", e))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
            assert!(store.save_revertible("../x", b"no").is_err());
            Ok(())
        })
    }

    #[test]
    fn a_file_read_again_is_read_anew_after_any_change() -> Result<(), Error> {
        with_store("seen", |dir, store| {
            store.save("s", b"one")?;
            assert_eq!(store.load("s")?, Some(b"one".to_vec()));
            assert_eq!(store.load("s")?, Some(b"one".to_vec()));
            // Rewritten in place, same size, and its modification time put back: the change
            // time still moves.
            let path = store.record_path("s");
            let modified = fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(|e| cache_err("m", e))?;
            fs::write(&path, b"two").map_err(|e| cache_err("w", e))?;
            File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(modified))
                .map_err(|e| cache_err("t", e))?;
            assert_eq!(store.load("s")?, Some(b"two".to_vec()));
            // Replaced by another store (a rename), then removed.
            FileStore::new(dir).save("s", b"six")?;
            assert_eq!(store.load("s")?, Some(b"six".to_vec()));
            fs::remove_file(&path).map_err(|e| cache_err("r", e))?;
            assert_eq!(store.load("s")?, None);
            Ok(())
        })
    }

    #[test]
    fn a_corrupt_install_secret_is_replaced() -> Result<(), Error> {
        with_store("secret", |dir, store| {
            store.ensure_dir()?;
            fs::write(dir.join(INSTALL_SECRET_FILE), b"short").map_err(|e| cache_err("w", e))?;
            let secret = store.install_secret()?;
            assert_eq!(secret.len(), INSTALL_SECRET_LEN);
            assert_eq!(store.install_secret()?, secret);
            Ok(())
        })
    }

    #[test]
    fn racing_processes_agree_on_one_secret() -> Result<(), Error> {
        with_store("race", |dir, _| {
            let secrets: Vec<Vec<u8>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| s.spawn(|| FileStore::new(dir).install_secret()))
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok())
                    .collect::<Result<_, _>>()
            })?;
            assert_eq!(secrets.len(), 8);
            assert!(secrets.iter().all(|s| s == &secrets[0]));
            Ok(())
        })
    }

    #[test]
    fn memory_store_basics() -> Result<(), Error> {
        let store = MemoryStore::new()?;
        assert_eq!(store.load("a")?, None);
        store.save("a", b"x")?;
        assert_eq!(store.load("a")?, Some(b"x".to_vec()));
        store.remove("a")?;
        assert_eq!(store.load("a")?, None);
        assert_eq!(store.install_secret()?.len(), INSTALL_SECRET_LEN);
        assert_ne!(
            store.install_secret()?,
            MemoryStore::new()?.install_secret()?
        );
        let boxed: Box<dyn Store> = Box::new(store);
        drop(boxed.lock("a")?);
        drop(boxed.lock("a")?);
        Ok(())
    }
}
