//! The emulator's state file (`Options::state`, `polar-license emulator --state FILE`): loaded
//! at start, written atomically after a request that changed the keys or activations. Native
//! only, beside the HTTP server that saves it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::service::Core;
use crate::util::lock;

/// The state file of [`Options::state`](crate::Options::state): its path, and the text last written
/// to it.
pub(crate) struct StateFile {
    path: PathBuf,
    last: Mutex<String>,
}

impl StateFile {
    /// Loads `path` into `core` when it exists (a file that cannot be read whole is an error
    /// naming it), else writes the seed's state there, so a path that cannot be written fails
    /// at start rather than at the first activation.
    pub(crate) fn open(path: PathBuf, core: &mut Core) -> io::Result<StateFile> {
        let shown = path.display().to_string();
        let last = match fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| {
                    invalid_state(&shown, "it is not UTF-8 text (torn or not a state file)")
                })?;
                core.restore_state(&text)
                    .map_err(|e| invalid_state(&shown, &e))?;
                core.state_text()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let text = core.state_text();
                write_atomically(&path, &text).map_err(|e| {
                    io::Error::new(e.kind(), format!("the state file {shown}: {e}"))
                })?;
                text
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("the state file {shown}: {e}"),
                ))
            }
        };
        Ok(StateFile {
            path,
            last: Mutex::new(last),
        })
    }
}

fn invalid_state(path: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the state file {path} cannot be read: {why}; move it away (or start without \
             --state) to begin from the seed"
        ),
    )
}

impl StateFile {
    /// Writes the file when the keys or activations changed since it was last written: after
    /// every request, before its answer goes out, so an answered activation is on disk. A
    /// write that fails is said on stderr (the answer stands) and tried again after the next
    /// request.
    pub(crate) fn save(&self, core: &Mutex<Core>) {
        // The file's lock first, then the core's only to read: writes land in the order read.
        let mut last = lock(&self.last);
        let text = lock(core).state_text();
        if *last == text {
            return;
        }
        match write_atomically(&self.path, &text) {
            Ok(()) => *last = text,
            Err(e) => eprintln!(
                "emulator: could not write the state file {}: {e}",
                self.path.display()
            ),
        }
    }
}

/// `text` to `path` whole or not at all: a temporary file beside it, synced, renamed over it,
/// and the directory synced (Unix) so the rename survives a crash.
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        #[cfg(unix)]
        fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
