//! What the workspace's test suites share (a dev-dependency of the root crate, the command
//! line and the C crate; never published): scratch directories, the `polar-license` binary
//! with the host's settings cleared, and a CONNECT proxy on loopback.

#![cfg(not(target_arch = "wasm32"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system's temp dir, unique to this process and call, removed
/// (with everything in it) when dropped: never the user's data dir, never another test's.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A new, empty directory named `polar-license-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!(
            "polar-license-{label}-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("scratch dir {}: {e}", dir.display());
        }
        ScratchDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Its path as UTF-8 (for command-line arguments).
    pub fn arg(&self) -> &str {
        match self.0.to_str() {
            Some(s) => s,
            None => panic!("the temp dir is not UTF-8: {}", self.0.display()),
        }
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `program` with every `POLAR_*` variable of the host removed, so the environment the tests
/// run in (a developer's own settings, CI's) can never change what the command line does:
/// each test sets what it means to. One rule instead of a list that drifts from the options.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("POLAR_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A CONNECT proxy on loopback: each tunnel is counted and spliced to its target.
#[derive(Debug)]
pub struct ConnectProxy {
    /// `http://[user:password@]127.0.0.1:PORT`.
    pub url: String,
    /// How many tunnels it has opened.
    pub tunnels: Arc<AtomicUsize>,
}

fn splice(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn tunnel(client: TcpStream, counter: &AtomicUsize) {
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
    }
    let mut parts = first.split_whitespace();
    let mut client = client;
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n");
        return;
    };
    let Ok(upstream) = TcpStream::connect(target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
        return;
    };
    counter.fetch_add(1, Ordering::SeqCst);
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let t = thread::spawn(move || splice(c2, u2));
    splice(upstream, client);
    let _ = t.join();
}

impl ConnectProxy {
    /// Starts one, asking for `user:password` credentials in its URL when given (it does not
    /// check them: what matters is that they never show in an error).
    pub fn start(credentials: Option<&str>) -> ConnectProxy {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("bind a loopback port: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let tunnels = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&tunnels);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let counter = Arc::clone(&counter);
                thread::spawn(move || tunnel(client, &counter));
            }
        });
        let auth = credentials.map(|c| format!("{c}@")).unwrap_or_default();
        ConnectProxy {
            url: format!("http://{auth}127.0.0.1:{port}"),
            tunnels,
        }
    }

    /// Tunnels opened so far.
    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }
}
