# Shell functions the scripts share (sourced, never run): the setup scripts' timed steps, their
# apt and npm installs, and the pass/fail tally of the stages that count their own checks.
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The repository's root (this file is in its scripts/).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The whole matrix (FULL=1) or the default run. The default keeps, in each stage, the tests that
# can fail only there (CONTRIBUTING.md, "What each stage runs"); FULL=1 runs every suite in every
# stage, as the test command did before issue #55.
FULL="${FULL:-0}"
full() { [[ "$FULL" == 1 ]]; }

now() { date +%s.%N; }
# Seconds since START (a `now`), with one decimal.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# built_bin NAME CARGO-BUILD-ARGS...: sets BUILT to the debug binary NAME (a path under
# target/debug: `polar-license`, `examples/hostile_shapes`). In the test command, the tests
# stage's nextest run built every workspace binary and example already, with the workspace's
# features (scripts/test.sh exports TEST_BINS, that build's target/debug, once `cargo test
# --no-run` over the same packages says it is fresh): the c, wasm and python stages take theirs
# from it. Before, each ran `cargo build -p polar-license-cli` and the like, with the crate's own
# features: the CLI, the relay, the emulator, the core and every dependency whose features
# differ compiled a second time (measured in CONTRIBUTING.md, "What each stage runs"). Run
# alone, or when TEST_BINS lacks NAME, `cargo build CARGO-BUILD-ARGS...` as before.
built_bin() {
    local name="$1" out="${CARGO_TARGET_DIR:-$ROOT/target}"
    shift
    if [[ -n "${TEST_BINS:-}" && -x "$TEST_BINS/$name" ]]; then
        BUILT="$TEST_BINS/$name"
        echo "$name: the tests stage's build ($BUILT)"
        return 0
    fi
    [[ "$out" == /* ]] || out="$ROOT/$out"
    BUILT="$out/debug/$name"
    cargo build "$@"
}

# Runs `step_<name>` for each name after the label, timed, each result printed as
# `==> label: name: ok (1.2s)`, then exits: 0 when every step passed, 1 otherwise (every step
# still runs).
#   run_steps LABEL NAME...
# A setup script ends with `run_steps_of LABEL "$@" -- DEFAULT...`: the steps named on its
# command line (scripts/setup.sh runs some of a script's steps at a time), else all of them.
run_steps_of() {
    local label="$1" picked=() step
    shift
    while [[ $# -gt 0 && "$1" != -- ]]; do
        picked+=("$1")
        shift
    done
    shift
    if [[ ${#picked[@]} -eq 0 ]]; then picked=("$@"); fi
    for step in "${picked[@]}"; do
        if ! declare -F "step_$step" >/dev/null; then
            echo "$label: no step named $step (steps: $*)" >&2
            exit 2
        fi
    done
    run_steps "$label" "${picked[@]}"
}
run_steps() {
    local label="$1" step start result failed=0
    shift
    for step in "$@"; do
        echo "==> $label: $step"
        start="$(now)"
        if "step_$step"; then result=ok; else result=FAILED; failed=1; fi
        echo "==> $label: $step: $result ($(elapsed "$start")s)"
    done
    exit "$failed"
}

# apt-get update, then installs the packages named (as root, or through sudo). `--recommends`
# first installs the packages' recommended ones too.
apt_install() {
    local sudo="" recommends=(--no-install-recommends)
    if [[ "${1:-}" == --recommends ]]; then
        recommends=()
        shift
    fi
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    echo "installing from apt: $*"
    $sudo apt-get update &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${recommends[@]}" "$@"
}

# Installs from apt the package of each `tool:package` pair whose tool is not on PATH; when
# none is missing, says that what the first argument names is present.
apt_tools() {
    local what="$1" missing=() pair
    shift
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        echo "$what present, skipping apt"
        return 0
    fi
    apt_install "${missing[@]}"
}

# `npm_ci_once DIR LABEL TOOL COMMAND...`: runs COMMAND (an `npm ci` of DIR) unless DIR's stamp
# says its lock was installed with this node and node_modules/.bin/TOOL is there (TOOL "" : no
# tool checked); then writes the stamp (the lock's hash and node's version).
npm_ci_once() {
    local dir="$1" label="$2" tool="$3" stamp want
    shift 3
    if ! command -v npm >/dev/null 2>&1; then
        echo "npm not found: install node >= 20 and npm" >&2
        return 1
    fi
    stamp="$dir/node_modules/.setup-stamp"
    want="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1) node-$(node --version)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && (-z "$tool" || -x "$dir/node_modules/.bin/$tool") ]]; then
        echo "$label packages up to date (lock unchanged), skipping npm ci"
        return 0
    fi
    "$@" || return 1
    echo "$want" >"$stamp"
}

# The tally of a stage that counts its own checks: `record NAME PASSED FAILED` adds to PASSED
# and FAILED and prints `==> $STAGE NAME: P passed, F failed`.
PASSED=0
FAILED=0
record() {
    PASSED=$((PASSED + $2))
    FAILED=$((FAILED + $3))
    echo "==> $STAGE $1: $2 passed, $3 failed"
}

# Sums the libtest lines of the log $1 (cargo test, wasm-bindgen-test-runner: "test result:
# ok. 3 passed; 0 failed; 1 ignored; ..."): prints "passed failed ignored" (0 0 0 for none).
libtest_counts() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^test result: ' | awk '
        { for (i = 1; i <= NF; i++) {
              v = $(i - 1) + 0
              if ($i ~ /^passed/) p += v
              else if ($i ~ /^failed/) f += v
              else if ($i ~ /^ignored/) s += v
          } }
        END { print p + 0, f + 0, s + 0 }'
}

# `cargo_tool CRATE VERSION [cargo install flags...]`: installs a test tool that no registry has
# built (wasm-bindgen-cli, geckodriver, cbindgen, cargo-fuzz; Debian's cbindgen is 0.24, the
# others have no package) with cargo, cheaply: the tools share one build directory
# (~/.cache/polar-license/tools-target, kept between runs on a machine, so their common crates --
# clap, serde, syn, ... -- are compiled once) and a release profile built for compile time, not
# speed (opt-level 1, no LTO, 16 codegen units, no debug info): the tools only drive tests.
# TOOL_OPT_LEVEL=0 for a tool whose runs are too short for the optimiser to pay back.
cargo_tool() {
    local crate="$1" version="$2"
    shift 2
    local dir="${POLAR_TOOLS_TARGET:-$HOME/.cache/polar-license/tools-target}"
    mkdir -p "$dir"
    CARGO_TARGET_DIR="$dir" \
        CARGO_PROFILE_RELEASE_OPT_LEVEL="${TOOL_OPT_LEVEL:-1}" \
        CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_DEBUG=0 \
        CARGO_PROFILE_RELEASE_INCREMENTAL=false \
        cargo install "$crate" ${version:+--version "=$version"} "$@"
}

# The processes under PID (its children, theirs, ...), deepest first, one per line.
descendants() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do
        descendants "$child"
        echo "$child"
    done
}

# `within SECS CMD...`: runs CMD (a command or a shell function) and, when it outlives SECS
# seconds, stops it and every process it started (SIGTERM, then SIGKILL 10 s later), says so on
# stderr and returns 124, as timeout(1) does. A test that hangs (a process that never exits, a
# promise never settled) then fails its own stage or suite with its name, and the run goes on
# to print its summary: CI stops a run at 90 minutes and prints nothing of it. (timeout(1) runs
# only commands, and the stages are shell functions too.)
within() {
    local secs="$1" pid dog flags rc
    shift
    flags="$(mktemp -d)"
    "$@" &
    pid=$!
    # The watchdog acts only while CMD runs (`done` not yet there: a watchdog woken as it is
    # stopped must not report a hang), and its output is not the stage's (a sleep left behind
    # would hold tee's pipe open).
    (
        sleep "$secs"
        [[ -e "$flags/done" ]] && exit 0
        touch "$flags/hang"
        local tree
        tree="$(descendants "$pid") $pid"
        # shellcheck disable=SC2086
        kill -TERM $tree 2>/dev/null
        sleep 10
        # shellcheck disable=SC2086
        kill -KILL $tree $(descendants "$pid") 2>/dev/null
    ) </dev/null >/dev/null 2>&1 &
    dog=$!
    wait "$pid"
    rc=$?
    touch "$flags/done"
    # shellcheck disable=SC2046
    kill -TERM $(descendants "$dog") "$dog" 2>/dev/null
    wait "$dog" 2>/dev/null
    if [[ -e "$flags/hang" ]]; then
        rm -rf "$flags"
        echo "within: '$*' was still running after ${secs}s: stopped with everything it started (a hang; see the output above for the last test that began)" >&2
        return 124
    fi
    rm -rf "$flags"
    return "$rc"
}

# clippy_build: exports what makes cargo's builds of the workspace's crates lint them as they
# compile (scripts/clippy-wrapper.sh as RUSTC_WORKSPACE_WRAPPER: clippy-driver for the
# workspace's crates, the C ABI linted and then compiled by rustc). The default run's tests
# stage builds so (scripts/test.sh, TESTS_CLIPPY=1), and so must every later cargo command that
# means to reuse that build (scripts/seller-workers.sh): the wrapper is part of the workspace
# crates' hashes, so a build without it compiles every one of them again.
clippy_build() {
    CLIPPY_DRIVER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
    export CLIPPY_DRIVER RUSTC_WORKSPACE_WRAPPER="$ROOT/scripts/clippy-wrapper.sh" CLIPPY_RUSTC_ONLY=lint
}

# clippy_warned LOG...: cargo's line for each crate that warned in these build logs ("warning:
# `polar-license` (lib) generated 1 warning"; replayed from an earlier build's output when
# nothing was recompiled), printed with the warnings themselves; false when there is none.
clippy_warned() {
    local warned
    warned="$(sed 's/\x1b\[[0-9;]*m//g' "$@" 2>/dev/null | grep -E '^warning: .* generated [0-9]+ warnings?' || true)"
    [[ -n "$warned" ]] || return 1
    echo "clippy: warnings denied (-D warnings):"
    echo "$warned"
    sed 's/\x1b\[[0-9;]*m//g' "$@" 2>/dev/null | grep -E '^(warning|error)' -A 12 | head -n 80
}
