//! The seller table's values rows (issue #68, "Done when" 1st bullet): the rows of
//! tests/vectors/seller-rows.json with `"world": "values"`, for the native Rust faces' runners
//! (tests/seller_table.rs, crates/cli/tests/cli_seller_table.rs, crates/tauri/tests/seller_table.rs).
//! The row's Polar and its two relays are a tests/js/values-world.mjs process ([`World`], one a
//! relay host: `relay serve`, or the npm relay under workerd), which plays the Polar steps; the
//! face plays its own (`value`, `usage`, `relay_check`) through
//! [`ValuesFace`](crate::values_rows::ValuesFace). Each row gives a
//! [`Found`](crate::seller_rows::Found) whose id is `ROW@HOST`, written with the face's other
//! rows (paths in full: the two are native-only items, which rustdoc did not resolve here
//! bare). On wasm32 (the
//! Rust-on-wasm runner, tests/wasm_seller_table.rs, which starts no process) only the rows: the
//! worlds are started by scripts/test-wasm.sh and played over HTTP (values-world.mjs --http).

#[cfg(not(target_arch = "wasm32"))]
use crate::seller_rows::Found;
use crate::seller_rows::TABLE;
use serde_json::Value;
#[cfg(not(target_arch = "wasm32"))]
use std::collections::BTreeMap;
#[cfg(not(target_arch = "wasm32"))]
use std::io::{BufRead, BufReader, Write};
#[cfg(not(target_arch = "wasm32"))]
use std::path::{Path, PathBuf};
#[cfg(not(target_arch = "wasm32"))]
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;
#[cfg(not(target_arch = "wasm32"))]
use std::time::Instant;

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
/// A face's own steps of the values rows, each answering in the table's words.
pub trait ValuesFace {
    /// Checks `key` through the relay at `relay` (signed mode, asking it) and reads the
    /// face's `entitlement(name)`: the value (a string bare), or `absent`.
    fn value(&self, relay: &str, key: &str, name: &str) -> String;
    /// Reports `units` of `meter` with the idempotency id `id`: `recorded balance:N`,
    /// `duplicate balance:N` (`?`: not known), `credits_exhausted balance:N`, or the code.
    fn usage(&self, relay: &str, key: &str, meter: &str, units: f64, id: &str) -> String;
    /// Checks `key` through the relay: `licensed`, or `CODE · KIND` (the typed detail, and
    /// ` until=T` when known), or the code alone.
    fn relay_check(&self, relay: &str, key: &str) -> String;
}

#[cfg(not(target_arch = "wasm32"))]
/// The values world on one relay host (tests/js/values-world.mjs).
pub struct World {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
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
            host: host.to_string(),
            org: String::new(),
            pair: String::new(),
            relays: BTreeMap::new(),
            keys: BTreeMap::new(),
            meter: String::new(),
        };
        let hello = world.line()?;
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
        world.org = text("org");
        world.pair = text("pair");
        world.meter = text("meter");
        world.relays = map(&hello["relays"]);
        world.keys = map(&hello["keys"]);
        Ok(world)
    }

    fn line(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("the values world ({}) ended", self.host));
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
        match v.get("error") {
            Some(e) => Err(format!("the values world ({}): {e}", self.host)),
            None => Ok(v),
        }
    }

    /// Plays a Polar step; its `got` when it reads Polar.
    pub fn step(&mut self, step: &Value) -> Result<Option<String>, String> {
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
        let start = Instant::now();
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
/// Plays values row `row` on `world` with `face`.
pub fn play_values_row(row: &ValuesRow, world: &mut World, face: &dyn ValuesFace) -> Found {
    let mut found = Found {
        id: format!("{}@{}", row.id, world.host),
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
        let relay = world
            .relays
            .get(s["relay"].as_str().unwrap_or("plain"))
            .cloned()
            .unwrap_or_default();
        let key = world
            .keys
            .get(s["key"].as_str().unwrap_or_default())
            .cloned()
            .unwrap_or_default();
        match what {
            "usage" => {
                let got = face.usage(
                    &relay,
                    &key,
                    &world.meter,
                    s["units"].as_f64().unwrap_or_default(),
                    s["id"].as_str().unwrap_or_default(),
                );
                compare(&mut found, i, want, &got);
            }
            "value" | "relay_check" => {
                let start = Instant::now();
                let got = loop {
                    let got = if what == "value" {
                        face.value(&relay, &key, s["name"].as_str().unwrap_or_default())
                    } else {
                        face.relay_check(&relay, &key)
                    };
                    if want == Some(got.as_str()) || start.elapsed() > POLL {
                        break got;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                };
                compare(&mut found, i, want, &got);
            }
            _ => match world.step(s) {
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
/// Plays every values row on each of [`values_hosts`] (a world each, its rows in order; the
/// hosts at once), the face made for each world by `face`.
pub fn play_values<F: ValuesFace>(cli: &str, face: impl Fn(&World) -> F + Sync) -> Vec<Found> {
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
        let f = face(&world);
        rows.iter()
            .filter(|r| r.hosts.iter().any(|h| h == host))
            .map(|r| play_values_row(r, &mut world, &f))
            .collect()
    })
    .into_iter()
    .flatten()
    .collect()
}
