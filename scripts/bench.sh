#!/usr/bin/env bash
# Benchmarks of issue #6, printed as one markdown report with the exact commands run.
#
#   scripts/bench.sh [--quick] [--no-criterion] [--no-process] [--no-node] [--runs N]
#
# Issue #26's rows are here with their targets (the native cached check <= 10 µs, the CLI's
# cached `check` <= 1.5x `/bin/true` in one hyperfine run, node validate ours / SDK <= 1.0);
# the npm package's start-up rows are `node scripts/npm/startup.mjs` (import -> first cached
# check, a later cached check, Chromium).
#
# 1. criterion (`cargo bench -p polar-license --bench check --bench validate`): the cached
#    `check` through the file store (target: median <= 10 µs, issue #26; 20 µs before) and an online validate over
#    loopback against a bare ureq POST + serde_json::Value parse of the same bytes (target:
#    client overhead <= 5 %), medians read from target/criterion/**/new/estimates.json, plus
#    the interleaved A/B ratio the validate bench writes.
# 2. the whole process: `polar-license check` answered from a fresh cache, N runs (default
#    200): median wall time per process (target <= 5 ms; hyperfine when installed, else a
#    `date +%s%N` loop) and peak RSS (`/usr/bin/time -v`; target <= 10 MB).
# 3. node: 500 sequential validates against the emulator through the npm package (built by
#    scripts/build-npm.sh when target/npm/pkg is missing) and through @polar-sh/sdk, interleaved
#    in one process (scripts/npm/bench-validate.mjs; target: total time ratio <= 1.0).
#
# --quick   for CI: short criterion runs (1 s warm-up, 2 s measurement, 20 samples), 10
#           interleaved rounds, N=50; same report. Exit status is 0 unless something failed
#           to run: a missed target is reported as "miss", not an error.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=0
CRITERION=1
PROCESS=1
NODE=1
RUNS=200
while [[ $# -gt 0 ]]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --no-criterion) CRITERION=0 ;;
    --no-process) PROCESS=0 ;;
    --no-node) NODE=0 ;;
    --runs)
        RUNS="$2"
        shift
        ;;
    -h | --help)
        sed -n '2,22p' "$0"
        exit 0
        ;;
    *)
        echo "unknown option $1" >&2
        exit 2
        ;;
    esac
    shift
done
CRIT_ARGS=()
if [[ $QUICK -eq 1 ]]; then
    CRIT_ARGS=(--warm-up-time 1 --measurement-time 2 --sample-size 20)
    export BENCH_ROUNDS="${BENCH_ROUNDS:-10}"
    [[ $RUNS -eq 200 ]] && RUNS=50
fi

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
LOG_DIR="$TARGET_DIR/bench-logs"
mkdir -p "$LOG_DIR"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
START="$(now)"
failed=0
REPORT=()
say() { REPORT+=("$*"); }

# ---- tools: hyperfine and GNU time (apt, when we may) -----------------------------------
install_tools() {
    local missing=()
    command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
    [[ -x /usr/bin/time ]] || missing+=(time)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
        echo "==> apt-get install -y ${missing[*]}"
        { apt-get install -y --no-install-recommends "${missing[@]}" ||
            { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }; } \
            >"$LOG_DIR/apt.log" 2>&1 || echo "    (apt-get failed: see $LOG_DIR/apt.log; falling back)"
    fi
}
[[ $PROCESS -eq 1 ]] && install_tools

# A JSON field, with jq or python3.
json_get() { # FILE EXPR (jq syntax, simple paths only)
    if command -v jq >/dev/null 2>&1; then
        jq -r "$2" "$1"
    else
        python3 -c 'import json,re,sys
v=json.load(open(sys.argv[1]))
for k in re.findall(r"\"([^\"]*)\"|([^.\[\]]+)", sys.argv[2]):
    k = k[0] or k[1]
    v = v[int(k)] if k.isdigit() else v[k]
print(v)' "$1" "$2"
    fi
}
fmt_ns() { awk -v n="$1" 'BEGIN { if (n >= 1e6) printf "%.2f ms", n / 1e6; else if (n >= 1e3) printf "%.2f µs", n / 1e3; else printf "%.0f ns", n }'; }
verdict() { # VALUE LIMIT -> pass / miss (by x)
    awk -v v="$1" -v l="$2" 'BEGIN { if (v <= l) print "pass"; else printf "miss (%.2fx the target)", v / l }'
}

load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }
say "## polar-license benchmarks ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(load)$([[ $QUICK -eq 1 ]] && echo ", --quick"))"
say ""

# ---- 1. criterion -----------------------------------------------------------------------
if [[ $CRITERION -eq 1 ]]; then
    cmd=(cargo bench -p polar-license --bench check --bench validate)
    [[ ${#CRIT_ARGS[@]} -gt 0 ]] && cmd+=(-- "${CRIT_ARGS[@]}")
    echo "==> ${cmd[*]}"
    t0="$(now)"
    rm -rf "$TARGET_DIR/criterion/check" "$TARGET_DIR/criterion/validate" "$TARGET_DIR/criterion/validate-interleaved.json"
    if "${cmd[@]}" >"$LOG_DIR/criterion.log" 2>&1; then
        crit_secs="$(elapsed "$t0")"
        median_ns() { json_get "$TARGET_DIR/criterion/$1/new/estimates.json" .median.point_estimate 2>/dev/null; }
        say "### criterion (\`${cmd[*]}\`, ${crit_secs} s)"
        say ""
        say "| benchmark | median | target | result |"
        say "|---|---|---|---|"
        for b in check/cached_file_store check/cached_recorded_answer check/fs_read_record \
            check/cache_decode check/record_json_parse \
            check/hmac_sha256_record check/cache_encode check/mac_key_derive check/grace_plan \
            validate/baseline_ureq_value validate/client validate/baseline_ureq_timeouts; do
            m="$(median_ns "$b")"
            if [[ -z "$m" ]]; then
                say "| \`$b\` | missing | | |"
                failed=1
                continue
            fi
            if [[ $b == check/cached_file_store ]]; then
                say "| \`$b\` | $(fmt_ns "$m") | <= 10 µs | $(verdict "$m" 10000) |"
            else
                say "| \`$b\` | $(fmt_ns "$m") | | context |"
            fi
        done
        base="$(median_ns validate/baseline_ureq_value)"
        client="$(median_ns validate/client)"
        tmo="$(median_ns validate/baseline_ureq_timeouts)"
        ratio_line() { # LABEL RATIO
            local pct
            pct="$(awk -v r="$2" 'BEGIN { printf "%+.1f %%", (r - 1) * 100 }')"
            say "| $1 | $(awk -v r="$2" 'BEGIN { printf "%.3f", r }') ($pct) | <= 1.05 | $(verdict "$2" 1.05) |"
        }
        if [[ -n "$base" && -n "$client" ]]; then
            ratio_line "**ratio** client / baseline (criterion medians)" "$(awk -v a="$client" -v b="$base" 'BEGIN { print a / b }')"
        fi
        inter="$TARGET_DIR/criterion/validate-interleaved.json"
        if [[ -f "$inter" ]]; then
            rounds="$(json_get "$inter" .rounds)"
            ratio_line "**ratio** client / baseline (interleaved, median of $rounds rounds)" "$(json_get "$inter" .client.ratio)"
            r_t="$(json_get "$inter" .baseline_ureq_timeouts.ratio)"
            r_c="$(json_get "$inter" .client.ratio)"
            say "| ratio baseline+client's timeouts / baseline (interleaved) | $(awk -v r="$r_t" 'BEGIN { printf "%.3f (%+.1f %%)", r, (r - 1) * 100 }') | | context: ureq's per-call resolver thread |"
            say "| ratio client / baseline+client's timeouts (interleaved) | $(awk -v a="$r_c" -v b="$r_t" 'BEGIN { printf "%.3f (%+.1f %%)", a / b, (a / b - 1) * 100 }') | | context: our code alone |"
        fi
        if [[ -n "$tmo" && -n "$client" ]]; then
            say "| ratio client / baseline+client's timeouts (criterion medians) | $(awk -v a="$client" -v b="$tmo" 'BEGIN { printf "%.3f (%+.1f %%)", a / b, (a / b - 1) * 100 }') | | context: our code alone |"
        fi
        say ""
    else
        failed=1
        tail -n 30 "$LOG_DIR/criterion.log"
        say "criterion FAILED: see $LOG_DIR/criterion.log"
        say ""
    fi
fi

# ---- 2. the whole process ---------------------------------------------------------------
EMU_PIDS=()
WORK=""
cleanup() {
    local pid
    for pid in "${EMU_PIDS[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    [[ -n "$WORK" ]] && rm -rf "$WORK"
}
trap cleanup EXIT

# start_emulator OUT: the release `polar-license emulator` on a free port, its output in OUT;
# sets EMU_URL and EMU_ORG (stopped on exit).
start_emulator() {
    local out="$1" i
    : >"$out"  # emptied first: the check below must not read a previous run's port
    "$TARGET_DIR/release/polar-license" emulator --port 0 >"$out" 2>&1 &
    EMU_PIDS+=($!)
    EMU_URL=""
    EMU_ORG=""
    for i in $(seq 100); do
        EMU_URL="$(sed -n 's/^listening on //p' "$out" | head -n 1)"
        EMU_ORG="$(sed -n 's/^organization //p' "$out" | head -n 1)"
        [[ -n "$EMU_URL" && -n "$EMU_ORG" ]] && return 0
        sleep 0.1
    done
    echo "the emulator did not start" >&2
    cat "$out" >&2
    return 1
}

if [[ $PROCESS -eq 1 ]]; then
    process() {
        local build=(cargo build --release -p polar-license-cli)
        echo "==> ${build[*]}"
        "${build[@]}" >"$LOG_DIR/build-cli.log" 2>&1 || {
            tail -n 20 "$LOG_DIR/build-cli.log"
            return 1
        }
        local bin="$TARGET_DIR/release/polar-license"
        WORK="$(mktemp -d)"
        start_emulator "$WORK/emulator.out" || return 1
        local url="$EMU_URL" org="$EMU_ORG" i
        export POLAR_API_URL="$url" POLAR_ORGANIZATION_ID="$org" POLAR_LICENSE_CACHE_DIR="$WORK/cache"
        export POLAR_LICENSE_KEY="DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A"
        "$bin" activate --label bench >"$WORK/activate.out" 2>&1 || {
            cat "$WORK/activate.out" >&2
            return 1
        }
        "$bin" check >/dev/null 2>&1 || return 1 # the activation made the record fresh
        "$bin" --json check >"$WORK/check.json" 2>&1 || return 1
        grep -q '"source":"cache"' "$WORK/check.json" || {
            echo "check did not answer from the cache: $(cat "$WORK/check.json")" >&2
            return 1
        }
        local requests_before
        requests_before="$(curl -s "$url/__emulator/requests" 2>/dev/null || echo "?")"

        local check_cmd="$bin check"
        local tool median_ms true_ms="" version_ms=""
        if command -v hyperfine >/dev/null 2>&1; then
            tool="hyperfine -N --warmup 10 --runs $RUNS --export-json $WORK/hf.json '$check_cmd' /bin/true '$bin --version'"
            hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$WORK/hf.json" "$check_cmd" /bin/true "$bin --version" >"$LOG_DIR/hyperfine.log" 2>&1 || return 1
            true_ms="$(awk -v s="$(json_get "$WORK/hf.json" '.results[1].median')" 'BEGIN { printf "%.2f", s * 1000 }')"
            version_ms="$(awk -v s="$(json_get "$WORK/hf.json" '.results[2].median')" 'BEGIN { printf "%.2f", s * 1000 }')"
            median_ms="$(awk -v s="$(json_get "$WORK/hf.json" '.results[0].median')" 'BEGIN { printf "%.2f", s * 1000 }')"
            local mean_ms min_ms
            mean_ms="$(awk -v s="$(json_get "$WORK/hf.json" '.results[0].mean')" 'BEGIN { printf "%.2f", s * 1000 }')"
            min_ms="$(awk -v s="$(json_get "$WORK/hf.json" '.results[0].min')" 'BEGIN { printf "%.2f", s * 1000 }')"
        else
            tool="for i in \$(seq $RUNS); do s=\$(date +%s%N); $check_cmd >/dev/null; e=\$(date +%s%N); echo \$((e - s)); done | sort -n"
            for i in $(seq 5); do $check_cmd >/dev/null; done
            for i in $(seq "$RUNS"); do
                local s e
                s=$(date +%s%N)
                $check_cmd >/dev/null
                e=$(date +%s%N)
                echo $((e - s))
            done | sort -n >"$WORK/times.txt"
            median_ms="$(awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] / 1e6 }' "$WORK/times.txt")"
            mean_ms="$(awk '{ s += $1 } END { printf "%.2f", s / NR / 1e6 }' "$WORK/times.txt")"
            min_ms="$(awk 'NR == 1 { printf "%.2f", $1 / 1e6 }' "$WORK/times.txt")"
        fi
        local rss_cmd="/usr/bin/time -v $check_cmd" rss_runs=20 peak_kb=0 kb
        if [[ -x /usr/bin/time ]]; then
            for i in $(seq "$rss_runs"); do
                kb="$(/usr/bin/time -v $check_cmd 2>&1 >/dev/null | sed -n 's/.*Maximum resident set size (kbytes): //p')"
                [[ -n "$kb" && "$kb" -gt "$peak_kb" ]] && peak_kb="$kb"
            done
        fi
        local requests_after
        requests_after="$(curl -s "$url/__emulator/requests" 2>/dev/null || echo "?")"

        say "### whole process: \`polar-license check\` from a fresh cache ($RUNS runs)"
        say ""
        say "Setup: \`${build[*]}\`; \`$bin emulator --port 0\` ($url); with POLAR_API_URL, POLAR_ORGANIZATION_ID, POLAR_LICENSE_CACHE_DIR (a temp dir) and POLAR_LICENSE_KEY set: \`$bin activate --label bench\`, \`$bin check\` (online), then \`$bin --json check\` gave \`source: cache\`. Emulator request counter before/after the timed runs: \`$requests_before\` / \`$requests_after\`."
        say ""
        say "| measure | value | target | result | command |"
        say "|---|---|---|---|---|"
        say "| median wall time per process | $median_ms ms (mean $mean_ms, min $min_ms) | <= 5 ms | $(verdict "$median_ms" 5) | \`$tool\` |"
        if [[ -n "${true_ms:-}" ]]; then
            local times
            times="$(awk -v a="$median_ms" -v b="$true_ms" 'BEGIN { printf "%.2f", a / b }')"
            say "| **ratio** \`check\` / \`/bin/true\` (medians, the same hyperfine run; issue #26) | $times× (/bin/true $true_ms ms) | <= 1.5× | $(verdict "$times" 1.5) | the same |"
            if [[ -n "${version_ms:-}" ]]; then
                say "| the floor: \`polar-license --version\` / \`/bin/true\` (the same binary starting and exiting, no cache read; the same run) | $(awk -v a="$version_ms" -v b="$true_ms" 'BEGIN { printf "%.2f", a / b }')× ($version_ms ms) | | context | the same |"
            fi
        fi
        if [[ $peak_kb -gt 0 ]]; then
            local mb
            mb="$(awk -v k="$peak_kb" 'BEGIN { printf "%.1f", k / 1024 }')"
            say "| peak RSS (max of $rss_runs runs) | $mb MB ($peak_kb KB) | <= 10 MB | $(verdict "$mb" 10) | \`$rss_cmd\` → Maximum resident set size |"
        else
            say "| peak RSS | not measured (/usr/bin/time missing) | <= 10 MB | | |"
        fi
        say ""
    }
    if ! process; then
        failed=1
        say "whole-process benchmark FAILED (logs in $LOG_DIR/)"
        say ""
    fi
fi

# ---- 3. node: our package against @polar-sh/sdk ------------------------------------------
if [[ $NODE -eq 1 ]]; then
    node_bench() {
        local pkg="target/npm/pkg" total=500 rounds=10
        [[ $QUICK -eq 1 ]] && rounds=5
        if [[ ! -f "$pkg/node.js" ]]; then
            echo "==> bash scripts/build-npm.sh"
            bash scripts/build-npm.sh >"$LOG_DIR/build-npm.log" 2>&1 || {
                tail -n 20 "$LOG_DIR/build-npm.log"
                return 1
            }
        fi
        [[ -d scripts/npm/node_modules/@polar-sh/sdk ]] || {
            echo "scripts/npm/node_modules/@polar-sh/sdk missing: run scripts/setup.sh" >&2
            return 1
        }
        local build=(cargo build --release -p polar-license-cli)
        "${build[@]}" >"$LOG_DIR/build-cli.log" 2>&1 || return 1
        # An emulator of its own: the process benchmark's has counted other requests.
        start_emulator "$LOG_DIR/node-bench-emulator.out" || return 1
        local cmd=(node scripts/npm/bench-validate.mjs "$EMU_URL" "$EMU_ORG" "$pkg" "$total" "$rounds")
        echo "==> ${cmd[*]}"
        "${cmd[@]}" >"$LOG_DIR/node-bench.json" 2>"$LOG_DIR/node-bench.log" || {
            cat "$LOG_DIR/node-bench.log"
            return 1
        }
        local j="$LOG_DIR/node-bench.json" ratio
        ratio="$(json_get "$j" .ratio)"
        say "### node: $total sequential validates each, interleaved in $rounds rounds ($(json_get "$j" .node))"
        say ""
        say "Command: \`${cmd[*]}\` (emulator: \`$TARGET_DIR/release/polar-license emulator --port 0\`)."
        say ""
        say "| client | total | median per call | target | result |"
        say "|---|---|---|---|---|"
        say "| polar-license (npm package) | $(json_get "$j" '."polar-license".total_ms') ms | $(json_get "$j" '."polar-license".median_ms') ms | | |"
        say "| @polar-sh/sdk $(node -p 'require("./scripts/npm/node_modules/@polar-sh/sdk/package.json").version') (\`customerPortal.licenseKeys.validate\`) | $(json_get "$j" '."@polar-sh/sdk".total_ms') ms | $(json_get "$j" '."@polar-sh/sdk".median_ms') ms | | |"
        say "| **ratio** ours / SDK (total time) | $ratio (median ratio $(json_get "$j" .median_ratio)) | <= 1.0 | $(verdict "$ratio" 1.0) |"
        say ""
    }
    if ! node_bench; then
        failed=1
        say "node benchmark FAILED (logs in $LOG_DIR/)"
        say ""
    fi
fi

say "Total: $(elapsed "$START") s; load at the end $(load). Logs in $LOG_DIR/."
echo
printf '%s\n' "${REPORT[@]}"
exit "$failed"
