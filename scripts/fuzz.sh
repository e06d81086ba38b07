#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time and fails on any crash.
#
#   scripts/fuzz.sh [SECONDS] [--update] [--cmin] [TARGET...]
#   scripts/fuzz.sh --build-only
#
# SECONDS    per target (default 30; libFuzzer's -max_total_time).
# --update   grow the committed corpus: libFuzzer writes new inputs into fuzz/corpus/<target>/
#            (commit them). Without it (the test command) it works on a scratch copy in
#            target/fuzz-corpus/, so running the tests never changes the source tree.
# --cmin     minimize every corpus afterwards (`cargo fuzz cmin`, edge coverage); with
#            --update done anyway for a corpus over 256 KB, so fuzz/corpus stays small
#            enough to commit (< 2 MB).
# TARGET...  only these targets (default: all of them).
# --build-only  only `cargo +nightly fuzz build` (every target; scripts/test.sh runs it in the
#            background at niceness 19 beside the stages before fuzz, whose run then finds it built).
#
# libFuzzer starts from fuzz/corpus/<target>/ and the hand-made seeds fuzz/seeds/<target>/
# (written by fuzz/seeds.py from the §6 bodies of docs/polar-api.md and real emulator
# answers). Crashes go to fuzz/artifacts/<target>/ (ignored by git) and make the script exit
# 1, with the command that reproduces each. Needs nightly and cargo-fuzz:
# scripts/setup-fuzz.sh.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SECONDS_EACH=30
CMIN=0
UPDATE=0
BUILD_ONLY=0
TARGETS=()
for arg in "$@"; do
    case "$arg" in
    --cmin) CMIN=1 ;;
    --update) UPDATE=1 ;;
    --build-only) BUILD_ONLY=1 ;;
    -h | --help)
        sed -n '2,22p' "$0"
        exit 0
        ;;
    '' | *[!0-9]*) TARGETS+=("$arg") ;;
    *) SECONDS_EACH="$arg" ;;
    esac
done
if [[ ${#TARGETS[@]} -eq 0 ]]; then
    TARGETS=(parse_response cache_decode cache_roundtrip requests one_answer lease rules_input)
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz or the nightly toolchain is missing: run scripts/setup-fuzz.sh" >&2
    exit 2
fi

LOG_DIR="target/fuzz-logs"
mkdir -p "$LOG_DIR"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
bytes_of() { find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
files_of() { find "$1" -type f 2>/dev/null | wc -l | tr -d ' '; }

start_all="$(now)"
echo "==> cargo +nightly fuzz build"
build_start="$(now)"
if ! cargo +nightly fuzz build >"$LOG_DIR/build.log" 2>&1; then
    tail -n 40 "$LOG_DIR/build.log"
    echo "fuzz build failed" >&2
    exit 1
fi
echo "    built in $(elapsed "$build_start") s"
[[ $BUILD_ONLY -eq 0 ]] || exit 0

# One target's run, its corpus and its row: run_target TARGET writes $LOG_DIR/TARGET.row (the
# table's row) and $LOG_DIR/TARGET.status (ok or the exit code).
run_target() {
    local t="$1" corpus="fuzz/corpus/$1" scratch seeds dict cmd t_start status secs execs rate cov result
    mkdir -p "$corpus"
    if [[ $UPDATE -eq 0 ]]; then
        scratch="target/fuzz-corpus/$t"
        rm -rf "$scratch"
        mkdir -p "$scratch"
        cp -R "$corpus/." "$scratch/"
        corpus="$scratch"
    fi
    seeds=()
    [[ -d "fuzz/seeds/$t" ]] && seeds=("fuzz/seeds/$t")
    dict=()
    case "$t" in
    parse_response | cache_decode) dict=(-dict=fuzz/polar.dict) ;;
    one_answer) dict=(-dict=fuzz/one_answer.dict) ;;
    esac
    cmd=(cargo +nightly fuzz run "$t" "$corpus" "${seeds[@]}" -- "-max_total_time=$SECONDS_EACH"
        -timeout=10 -print_final_stats=1 "${dict[@]}")
    echo "==> ${cmd[*]}"
    t_start="$(now)"
    "${cmd[@]}" >"$LOG_DIR/$t.log" 2>&1
    status=$?
    secs="$(elapsed "$t_start")"
    execs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$LOG_DIR/$t.log" | grep -Eo '[0-9]+$' | tail -n 1)"
    rate="$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$LOG_DIR/$t.log" | grep -Eo '[0-9]+$' | tail -n 1)"
    cov="$(grep -Eo '(DONE|pulse|NEW|REDUCE) +cov: [0-9]+ ft: [0-9]+' "$LOG_DIR/$t.log" | tail -n 1 | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+)/\1 \/ \2/')"
    if [[ $status -eq 0 ]]; then
        result=ok
    else
        result="CRASH (exit $status)"
        grep -E "panicked at|ERROR: libFuzzer|SUMMARY" "$LOG_DIR/$t.log" | head -n 5
        for a in fuzz/artifacts/"$t"/*; do
            [[ -e "$a" ]] && echo "    reproduce: cargo +nightly fuzz run $t $a"
        done
    fi
    if [[ $CMIN -eq 1 || ($UPDATE -eq 1 && $(bytes_of "$corpus") -gt 262144) ]]; then
        # Edges only (no hit counts): the same coverage in about half the files.
        echo "    cargo +nightly fuzz cmin $t $corpus -- -use_counters=0"
        cargo +nightly fuzz cmin "$t" "$corpus" -- -use_counters=0 >"$LOG_DIR/$t.cmin.log" 2>&1 ||
            echo "    (cmin failed: see $LOG_DIR/$t.cmin.log)"
    fi
    echo "| \`$t\` | ${secs} s | ${execs:-?} | ${rate:-?} | ${cov:-?} | $(files_of "$corpus") / $(bytes_of "$corpus") B | $result |" >"$LOG_DIR/$t.row"
    echo "$result" >"$LOG_DIR/$t.status"
    echo "    $t: $result in ${secs} s, ${execs:-?} execs"
}

# A libFuzzer run uses one core: as many targets at once as there are cores (FUZZ_JOBS), each
# still given its SECONDS of wall time on a core of its own.
JOBS="${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}"
running=0
for t in "${TARGETS[@]}"; do
    rm -f "$LOG_DIR/$t.row" "$LOG_DIR/$t.status"
    if [[ $running -ge $JOBS ]]; then
        wait -n
        running=$((running - 1))
    fi
    run_target "$t" &
    running=$((running + 1))
done
wait

ROWS=()
failed=0
for t in "${TARGETS[@]}"; do
    if [[ -f "$LOG_DIR/$t.row" ]]; then
        ROWS+=("$(cat "$LOG_DIR/$t.row")")
    else
        ROWS+=("| \`$t\` | | | | | | no result |")
    fi
    [[ "$(cat "$LOG_DIR/$t.status" 2>/dev/null)" == ok ]] || failed=1
done

echo
echo "### Fuzzing (${SECONDS_EACH} s per target)"
echo
echo "| target | time | execs | exec/s | cov / features | corpus (files / bytes) | result |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "corpus total: $(bytes_of fuzz/corpus) bytes in $(files_of fuzz/corpus) files (seeds: $(bytes_of fuzz/seeds) bytes in $(files_of fuzz/seeds) files); whole run $(elapsed "$start_all") s; logs in $LOG_DIR/"
exit "$failed"
