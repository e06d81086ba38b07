#!/usr/bin/env bash
# The command line's cached `check`, a whole process each, against `/bin/true` and `--version`,
# for two builds side by side (hyperfine; a benchmark, not a test):
#
#   bash scripts/cli-ab.sh BEFORE_BINARY [AFTER_BINARY] [RUNS] [ROUNDS]
#
# AFTER_BINARY defaults to target/release/polar-license (cargo build --release -p
# polar-license-cli), RUNS to 200, ROUNDS to 3. Each build activates the demo key once into its
# own cache directory against one emulator (the after build's), then each round times, in one
# hyperfine run: /bin/true, a Rust hello world (dynamically and statically linked: the floor of a
# Rust binary's start), BEFORE and AFTER --version, BEFORE check, AFTER check. Prints each median
# and its ratio to /bin/true. Used for docs/performance.md's issue #38 rows.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BEFORE="${1:?usage: scripts/cli-ab.sh BEFORE_BINARY [AFTER_BINARY] [RUNS] [ROUNDS]}"
AFTER="${2:-$ROOT/target/release/polar-license}"
RUNS="${3:-200}"
ROUNDS="${4:-3}"
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }

WORK="$(mktemp -d)"
"$AFTER" emulator --port 0 >"$WORK/emulator.out" 2>&1 &
EMULATOR=$!
trap 'kill $EMULATOR 2>/dev/null; rm -rf "$WORK"' EXIT
URL=""
for _ in $(seq 100); do
    URL="$(sed -n 's/^listening on //p' "$WORK/emulator.out" | head -n 1)"
    [[ -n "$URL" ]] && break
    sleep 0.1
done
[[ -n "$URL" ]] || { cat "$WORK/emulator.out" >&2; exit 1; }
export POLAR_API_URL="$URL"
export POLAR_ORGANIZATION_ID="$(sed -n 's/^organization //p' "$WORK/emulator.out" | head -n 1)"
export POLAR_LICENSE_KEY="DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A"
for build in before after; do
    bin="$AFTER"
    [[ $build == before ]] && bin="$BEFORE"
    "$bin" --cache-dir "$WORK/$build" activate --label bench >/dev/null
    "$bin" --cache-dir "$WORK/$build" check >/dev/null
done
# The floor of a Rust binary's start here: hello world, linked as the command line is
# (dynamically: libc, libgcc_s) and statically (no dynamic loader), with the same rustc.
printf 'fn main() { println!("polar-license 0.1.0"); }\n' >"$WORK/hello.rs"
rustc -O -o "$WORK/hello" "$WORK/hello.rs"
rustc -O -C target-feature=+crt-static -o "$WORK/hello-static" "$WORK/hello.rs"
for round in $(seq "$ROUNDS"); do
    hyperfine -N --runs "$RUNS" --warmup 5 --export-json "$WORK/round.json" \
        /bin/true "$WORK/hello" "$WORK/hello-static" "$BEFORE --version" "$AFTER --version" \
        "$BEFORE --cache-dir $WORK/before check" \
        "$AFTER --cache-dir $WORK/after check" >/dev/null 2>"$WORK/hyperfine.err"
    echo "round $round:"
    node -e '
        const r = require(process.argv[1]).results;
        const base = r[0].median;
        const names = ["/bin/true", "Rust hello world", "… linked statically", "before --version", "after --version", "before check", "after check"];
        r.forEach((x, i) => console.log(`  ${names[i].padEnd(20)} ${(x.median * 1000).toFixed(3)} ms  ${(x.median / base).toFixed(2)}x /bin/true`));
    ' "$WORK/round.json"
done
echo "requests to the emulator: $(curl -s "$URL/__emulator/requests")"
