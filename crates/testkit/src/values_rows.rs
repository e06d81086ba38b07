//! The seller table's values rows (issue #68, "Done when" 1st bullet): the rows of
//! tests/vectors/seller-rows.json with `"world": "values"`, and the one loop that plays them
//! ([`play_row`]) for every Rust runner: the native faces' (tests/seller_table.rs,
//! crates/cli/tests/cli_seller_table.rs, crates/tauri/tests/seller_table.rs, through
//! [`play_values`], native only) and the Rust-on-wasm one (tests/wasm_seller_table.rs). The
//! row's Polar and its two relays are a tests/js/values-world.mjs process (one a relay host:
//! `relay serve`, or the npm relay under workerd), which plays the Polar steps
//! ([`ValuesWorld`]: natively the process's pipes, on wasm32 its `--http` control routes, the
//! worlds started by scripts/test-wasm.sh); the face plays its own (`value`, `usage`,
//! `relay_check`) through [`ValuesFace`]. Each row gives a [`Found`] whose id is `ROW@HOST`,
//! written with the face's other rows. The loop is async so that the wasm runner's face can
//! await; natively every step answers at once and the loop runs to its end in one poll.

use crate::seller_rows::{Found, TABLE};
use polar_license::grace::CheckOutcome;
use polar_license::usage::UsageAnswer;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Display;
#[cfg(not(target_arch = "wasm32"))]
use std::io::{BufRead, BufReader, Write};
#[cfg(not(target_arch = "wasm32"))]
use std::path::{Path, PathBuf};
#[cfg(not(target_arch = "wasm32"))]
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// How long a polled face step (`value`, `relay_check`) waits for its expected answer.
pub const POLL: Duration = Duration::from_secs(10);

/// One values row: its id, its hosts and its steps as the table has them.
#[derive(Debug, Clone)]
pub struct ValuesRow {
    /// Its id (the TSV's is `ID@HOST`).
    pub id: String,
    /// The relay hosts it runs on (`native`, `workers`).
    pub hosts: Vec<String>,
    /// Its steps.
    pub steps: Vec<Value>,
}

/// The table's values rows, in order.
pub fn values_rows() -> Vec<ValuesRow> {
    let table: Value = serde_json::from_str(TABLE).expect("tests/vectors/seller-rows.json");
    table["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["world"] == "values")
        .map(|r| ValuesRow {
            id: r["id"].as_str().expect("id").to_string(),
            hosts: r["hosts"]
                .as_array()
                .expect("hosts")
                .iter()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect(),
            steps: r["steps"].as_array().expect("steps").clone(),
        })
        .collect()
}

/// A values world's hello (its first line, or `GET /hello` with `--http`).
#[derive(Debug, Clone, Default)]
pub struct Hello {
    /// The relay host.
    pub host: String,
    /// The organization.
    pub org: String,
    /// The relay's public key pair text (signed mode).
    pub pair: String,
    /// The relays: `plain`, `rule` (the seller's refusal rule).
    pub relays: BTreeMap<String, String>,
    /// The keys by use.
    pub keys: BTreeMap<String, String>,
    /// The meter's event name.
    pub meter: String,
}

impl Hello {
    /// Reads the hello's JSON.
    pub fn read(hello: &Value) -> Hello {
        let map = |v: &Value| -> BTreeMap<String, String> {
            v.as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = |k: &str| hello[k].as_str().unwrap_or_default().to_string();
        Hello {
            host: text("host"),
            org: text("org"),
            pair: text("pair"),
            relays: map(&hello["relays"]),
            keys: map(&hello["keys"]),
            meter: text("meter"),
        }
    }
}

/// A values world the loop plays the Polar steps on.
#[allow(async_fn_in_trait)] // played on one thread, never sent
pub trait ValuesWorld {
    /// What it said when it started.
    fn hello(&self) -> &Hello;
    /// Plays a Polar step; its `got` when it reads Polar.
    async fn step(&mut self, step: &Value) -> Result<Option<String>, String>;
}

/// A face's own steps of the values rows, each answering in the table's words.
#[allow(async_fn_in_trait)] // played on one thread, never sent
pub trait ValuesFace {
    /// Checks `key` through the relay at `relay` (signed mode, asking it) and reads the
    /// face's `entitlement(name)`: the value (a string bare), or `absent`.
    async fn value(&self, relay: &str, key: &str, name: &str) -> String;
    /// Reports `units` of `meter` with the idempotency id `id`: `recorded balance:N`,
    /// `duplicate balance:N` (`?`: not known), `credits_exhausted balance:N`, or the code.
    async fn usage(&self, relay: &str, key: &str, meter: &str, units: f64, id: &str) -> String;
    /// Checks `key` through the relay: `licensed`, or `CODE · KIND` (the typed detail, and
    /// ` until=T` when known), or the code alone.
    async fn relay_check(&self, relay: &str, key: &str) -> String;
}

/// A balance as the table shows it (`?`: not known).
pub fn balance_cell(balance: Option<f64>) -> String {
    balance.map_or("?".to_string(), |b| b.to_string())
}

/// A usage report's cell when the relay took it: `recorded balance:N` or
/// `duplicate balance:N` (the balance as [`balance_cell`] shows it).
pub fn recorded_cell(duplicate: bool, balance: impl Display) -> String {
    let said = if duplicate { "duplicate" } else { "recorded" };
    format!("{said} balance:{balance}")
}

/// A usage report's cell when the seller's rule refused it at zero credits.
pub fn credits_cell(balance: impl Display) -> String {
    format!("credits_exhausted balance:{balance}")
}

/// A denial's cell with its typed detail: `CODE · KIND`, and ` until=T` when known.
pub fn stopped_cell(code: &str, kind: impl Display, until: Option<impl Display>) -> String {
    let until = until.map_or(String::new(), |u| format!(" until={u}"));
    format!("{code} · {kind}{until}")
}

/// The Rust faces' (native and wasm) `usage` cell from the core's answer.
pub fn usage_cell(answer: Result<UsageAnswer, polar_license::Error>) -> String {
    match answer {
        Ok(UsageAnswer::Recorded {
            duplicate, balance, ..
        }) => recorded_cell(duplicate, balance_cell(balance)),
        Ok(UsageAnswer::CreditsExhausted { balance: b }) => credits_cell(b),
        Ok(UsageAnswer::Backlog { .. }) => "usage_backlog".to_string(),
        Ok(UsageAnswer::Denied(d)) => d.reason.code().to_string(),
        Err(e) => e.reason().code().to_string(),
    }
}

/// The Rust faces' (native and wasm) `relay_check` cell from the core's check.
pub fn check_cell(outcome: &CheckOutcome) -> String {
    match outcome {
        CheckOutcome::Licensed { .. } => "licensed".to_string(),
        CheckOutcome::Denied(d) => match &d.stopped {
            Some(s) => stopped_cell(d.reason.code(), s.kind.code(), s.until),
            None => d.reason.code().to_string(),
        },
        other => other.reason().map_or("none", |r| r.code()).to_string(),
    }
}

/// The Rust faces' (native and wasm) `value` cell: the entitlement's value, or `absent`.
pub fn value_cell(value: Option<impl Display>) -> String {
    value.map_or("absent".to_string(), |v| v.to_string())
}

/// A clock for a polled step: the host's monotonic one natively, `Date.now()` on wasm32
/// (which has no `Instant`).
struct Since(
    #[cfg(not(target_arch = "wasm32"))] std::time::Instant,
    #[cfg(target_arch = "wasm32")] f64,
);

impl Since {
    fn now() -> Since {
        #[cfg(not(target_arch = "wasm32"))]
        let now = std::time::Instant::now();
        #[cfg(target_arch = "wasm32")]
        let now = js_sys::Date::now();
        Since(now)
    }

    fn over(&self, wait: Duration) -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        let passed = self.0.elapsed();
        #[cfg(target_arch = "wasm32")]
        let passed = Duration::from_secs_f64((js_sys::Date::now() - self.0).max(0.0) / 1000.0);
        passed > wait
    }
}

/// The while between a polled step's tries.
async fn pause() {
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::sleep(Duration::from_millis(50));
    #[cfg(target_arch = "wasm32")]
    crate::fetch::sleep_ms(50).await;
}

/// Plays values row `row` on `world` with `face`: the world's Polar steps, the face's own (a
/// polled step, `value` or `relay_check`, asked again until it answers as expected or
/// [`POLL`] has passed), each compared with the table; the row's cell is its step marked
/// `"cell"` (or its last compared one).
pub async fn play_row(
    row: &ValuesRow,
    world: &mut impl ValuesWorld,
    face: &impl ValuesFace,
) -> Found {
    let hello = world.hello().clone();
    let mut found = Found {
        id: format!("{}@{}", row.id, hello.host),
        ..Found::default()
    };
    let cell = row.steps.iter().position(|s| s["cell"] == true);
    let compare = |found: &mut Found, i: usize, want: Option<&str>, got: &str| {
        let Some(want) = want else { return };
        if want != got {
            found.failures.push(format!(
                "step {i} ({}): expected `{want}`, got `{got}`",
                row.steps[i]["do"]
            ));
        }
        if cell.is_none_or(|c| c == i) {
            found.expected = want.to_string();
            found.got = got.to_string();
        }
    };
    for (i, s) in row.steps.iter().enumerate() {
        let want = s["expect"]["verdict"].as_str();
        let what = s["do"].as_str().unwrap_or_default();
        let relay = hello
            .relays
            .get(s["relay"].as_str().unwrap_or("plain"))
            .cloned()
            .unwrap_or_default();
        let key = hello
            .keys
            .get(s["key"].as_str().unwrap_or_default())
            .cloned()
            .unwrap_or_default();
        match what {
            "usage" => {
                let units = s["units"].as_f64().unwrap_or_default();
                let id = s["id"].as_str().unwrap_or_default();
                let got = face.usage(&relay, &key, &hello.meter, units, id).await;
                compare(&mut found, i, want, &got);
            }
            "value" | "relay_check" => {
                let start = Since::now();
                let got = loop {
                    let got = if what == "value" {
                        let name = s["name"].as_str().unwrap_or_default();
                        face.value(&relay, &key, name).await
                    } else {
                        face.relay_check(&relay, &key).await
                    };
                    if want == Some(got.as_str()) || start.over(POLL) {
                        break got;
                    }
                    pause().await;
                };
                compare(&mut found, i, want, &got);
            }
            _ => match world.step(s).await {
                Ok(got) => {
                    if let Some(got) = got {
                        compare(&mut found, i, want, &got);
                    }
                }
                Err(e) => {
                    found.failures.push(format!("step {i} ({what}): {e}"));
                    return found;
                }
            },
        }
    }
    found
}

#[cfg(not(target_arch = "wasm32"))]
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[cfg(not(target_arch = "wasm32"))]
/// The relay hosts a native runner plays: `native` always; `workers` when the installed npm
/// package (`CONSUMER`) and scripts/npm's workerd are there (scripts/test-wasm.sh's stages).
/// With [`workers_only`](crate::seller_rows::workers_only), `workers` alone, whether they are
/// there or not (its world then fails to start, and so do its rows).
pub fn values_hosts() -> Vec<&'static str> {
    if crate::seller_rows::workers_only() {
        return vec!["workers"];
    }
    let workerd = root().join("scripts/npm/node_modules/.bin/workerd");
    let consumer = std::env::var_os("CONSUMER").filter(|c| !c.is_empty());
    match consumer {
        Some(c)
            if workerd.is_file() && Path::new(&c).join("node_modules/polar-license").is_dir() =>
        {
            vec!["native", "workers"]
        }
        _ => vec!["native"],
    }
}

#[cfg(not(target_arch = "wasm32"))]
/// The values world on one relay host (tests/js/values-world.mjs), over its pipes.
pub struct World {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    hello: Hello,
}

#[cfg(not(target_arch = "wasm32"))]
impl World {
    /// Starts the world on `host` with the command line `cli`.
    pub fn start(host: &str, cli: &str) -> Result<World, String> {
        let mut child = Command::new("node")
            .arg(root().join("tests/js/values-world.mjs"))
            .arg(host)
            .env("POLAR_CLI", cli)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("node tests/js/values-world.mjs: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut world = World {
            child,
            stdin,
            stdout,
            hello: Hello {
                host: host.to_string(),
                ..Hello::default()
            },
        };
        world.hello = Hello::read(&world.line()?);
        Ok(world)
    }

    fn line(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("the values world ({}) ended", self.hello.host));
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
        match v.get("error") {
            Some(e) => Err(format!("the values world ({}): {e}", self.hello.host)),
            None => Ok(v),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ValuesWorld for World {
    fn hello(&self) -> &Hello {
        &self.hello
    }

    async fn step(&mut self, step: &Value) -> Result<Option<String>, String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{step}").map_err(|e| e.to_string())?;
        let answer = self.line()?;
        Ok(answer["got"].as_str().map(str::to_string))
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Drop for World {
    fn drop(&mut self) {
        // Its stdin closed: it stops what it started and ends.
        drop(self.stdin.take());
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(not(target_arch = "wasm32"))]
/// Runs a native [`play_row`] to its end: the native world and faces answer every step at
/// once (they block), so it never waits on a waker.
fn run_to_end<T>(play: impl std::future::Future<Output = T>) -> T {
    let mut play = std::pin::pin!(play);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(done) = play.as_mut().poll(&mut cx) {
            return done;
        }
        std::thread::yield_now();
    }
}

#[cfg(not(target_arch = "wasm32"))]
/// Plays every values row on each of [`values_hosts`] (a world each, its rows in order; the
/// hosts at once), the face made for each world by `face`.
pub fn play_values<F: ValuesFace>(cli: &str, face: impl Fn(&Hello) -> F + Sync) -> Vec<Found> {
    let rows = values_rows();
    let hosts = values_hosts();
    crate::each_on_a_thread(&hosts, |host| {
        let mut world = match World::start(host, cli) {
            Ok(w) => w,
            Err(e) => {
                return rows
                    .iter()
                    .filter(|r| r.hosts.iter().any(|h| h == host))
                    .map(|r| Found {
                        id: format!("{}@{host}", r.id),
                        failures: vec![e.clone()],
                        ..Found::default()
                    })
                    .collect::<Vec<_>>();
            }
        };
        let f = face(world.hello());
        rows.iter()
            .filter(|r| r.hosts.iter().any(|h| h == host))
            .map(|r| run_to_end(play_row(r, &mut world, &f)))
            .collect()
    })
    .into_iter()
    .flatten()
    .collect()
}
