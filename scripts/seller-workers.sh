#!/usr/bin/env bash
# The seller table's Workers cells (issue #68, "Done when" 1st bullet: the values rows on both
# relay hosts, read on every face): each FACE's runner plays only the values rows on the npm
# relay under workerd (POLAR_SELLER_ONLY=workers), with CONSUMER the npm package
# scripts/test-wasm.sh installed (its npm-install suite), and adds those cells to the face's
# TSV (target/seller-table/FACE.tsv, or under SELLER_TABLE_DIR), its other rows kept:
#
#   bash scripts/seller-workers.sh [FACE...]     (FACE: rust cli c python tauri; default all)
#
# It builds nothing: each face reuses what its own stage built, so run it after them.
#   rust, cli  the tests stage's test binaries (tests/seller_table.rs,
#              crates/cli/tests/cli_seller_table.rs) through cargo nextest as that stage ran
#              them (its packages, features and environment, only these two test targets:
#              cargo finds them built), at once
#   c          scripts/test-c.sh's plain build of bindings/c/tests/test_seller_table.c (its
#              values code is the native cells', which the ASan+UBSan run checks already;
#              valgrind plays no values row)
#   python     scripts/test-python.sh's venv and its copy of the tests
#   tauri      scripts/test-tauri.sh's test binary (its cargo test log names it)
# A face is skipped when its TSV is missing (its own stage did not play it: scripts/seller-table.sh
# fails its cells) or has every Workers cell already (its stage's runner was given CONSUMER, as
# scripts/test.sh gives the Tauri stage once the package is installed).
#
# STAGE_MARKS=DIR (scripts/test.sh: its log directory): before a face, waits for the end of
# the background stages it needs (DIR/.NAME.ended): c, python and tauri their own; rust and cli
# c's and python's (below). One line a face, then
# `seller-workers: N passed, N failed` (a face's runner is one test); exit 1 on a failure.
set -u -o pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
STAGE=seller-workers

DIR="${SELLER_TABLE_DIR:-$ROOT/target/seller-table}"
export CONSUMER="${CONSUMER:-$ROOT/target/npm/consumer}"
CLI="$ROOT/target/debug/polar-license"
FACES=("$@")
[[ ${#FACES[@]} -gt 0 ]] || FACES=(rust cli c python tauri)

# The table's Workers cells, ID@workers, one a line.
WORKERS_IDS="$(node -e '
    const t = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const r of t.rows) if ((r.hosts || []).includes("workers")) console.log(`${r.id}@workers`);
' tests/vectors/seller-rows.json)"

# has_all FACE: its TSV has a row for every Workers cell.
has_all() {
    local id
    while IFS= read -r id; do
        awk -F'\t' -v id="$id" 'NR > 1 && $2 == id { found = 1 } END { exit !found }' \
            "$DIR/$1.tsv" || return 1
    done <<<"$WORKERS_IDS"
}

# The runners, each with POLAR_SELLER_ONLY=workers and CONSUMER (exported above).
# play_rust_cli TEST...: the tests stage's command (its packages and features: the same build),
# only these test targets (cargo checks only them, nextest lists only them).
play_rust_cli() {
    local tests=() t
    for t in "$@"; do tests+=(--test "$t"); done
    # Built as the tests stage built (its clippy wrapper, TESTS_CLIPPY: scripts/test.sh), else
    # cargo would compile every crate of the workspace again.
    (
        if [[ "${TESTS_CLIPPY:-0}" == 1 ]]; then clippy_build; fi
        env POLAR_SELLER_ONLY=workers POLAR_SELLER_TABLE_DIR="$DIR" \
            cargo nextest run --workspace --exclude tauri-plugin-polar-license --all-features \
            --no-fail-fast --tool-config-file "polar-license-scripts:$ROOT/scripts/nextest.toml" \
            "${tests[@]}"
    )
}
play_c() {
    local bin="target/c/test_seller_table-plain"
    [[ -x "$bin" ]] || { echo "no $bin (scripts/test-c.sh builds it)"; return 1; }
    env POLAR_SELLER_ONLY=workers POLAR_SELLER_ROWS="$ROOT/target/c/seller-rows.tsv" \
        POLAR_SELLER_ROOT="$ROOT" POLAR_LICENSE_CLI="$CLI" \
        POLAR_SELLER_TABLE_OUT="$DIR/c.tsv" "$bin"
}
play_python() {
    local venv="target/python/venv" tests="target/python/tests"
    [[ -x "$venv/bin/python" && -f "$tests/test_seller_table.py" ]] ||
        { echo "no $venv or $tests (scripts/test-python.sh makes them)"; return 1; }
    (cd "$tests" && env POLAR_SELLER_ONLY=workers POLAR_LICENSE_CLI="$CLI" \
        POLAR_SELLER_ROWS="$ROOT/tests/vectors/seller-rows.json" POLAR_SELLER_TABLE_DIR="$DIR" \
        "$ROOT/$venv/bin/python" -m pytest -p no:cacheprovider -q -rs test_seller_table.py)
}
play_tauri() {
    # cargo test's line for it: "Running tests/seller_table.rs (target/tauri-build/debug/deps/seller_table-…)".
    local bin
    bin="$(sed 's/\x1b\[[0-9;]*m//g' target/tauri/cargo-test.log 2>/dev/null |
        sed -n 's/^ *Running tests\/seller_table\.rs (\(.*\))$/\1/p' | tail -n 1)"
    [[ -n "$bin" && -x "$bin" ]] ||
        { echo "no seller_table binary named in target/tauri/cargo-test.log (scripts/test-tauri.sh)"; return 1; }
    [[ "$bin" == /* ]] || bin="$ROOT/$bin"
    # Run as cargo test runs it: from the package's directory; in the test command with the CLI
    # the Tauri stage ran (the tests stage's, TEST_BINS: scripts/test-tauri.sh built none).
    local cli=()
    [[ -n "${TEST_BINS:-}" && -x "$TEST_BINS/polar-license" ]] && cli=(POLAR_LICENSE_CLI="$TEST_BINS/polar-license")
    (cd crates/tauri && env "${cli[@]}" POLAR_SELLER_ONLY=workers POLAR_SELLER_TABLE_DIR="$DIR" \
        "$bin" --exact seller_table)
}

# wait_for_stages FACE: with STAGE_MARKS, until the stages FACE needs ended: its own (c,
# python, tauri); for rust and cli, c and python, which run target/debug/polar-license (cargo
# links it again as the tests stage's build when it checks that build).
wait_for_stages() {
    local stages=() s
    [[ -n "${STAGE_MARKS:-}" ]] || return 0
    case "$1" in
        rust | cli) stages=(c python) ;;
        *) stages=("$1") ;;
    esac
    for s in "${stages[@]}"; do
        while [[ ! -e "$STAGE_MARKS/.$s.ended" ]]; do sleep 1; done
    done
}

# face FACE...: plays these faces' Workers cells (one command), counted a face each.
face() {
    local todo=() f start rc
    for f in "$@"; do
        wait_for_stages "$f"
        if [[ ! -f "$DIR/$f.tsv" ]]; then
            echo "==> $STAGE $f: no $f.tsv (its own stage did not play the table): not run"
        elif has_all "$f"; then
            echo "==> $STAGE $f: $f.tsv has its Workers cells already"
        else
            todo+=("$f")
        fi
    done
    [[ ${#todo[@]} -gt 0 ]] || return 0
    echo "==> $STAGE ${todo[*]}: the Workers cells"
    start="$(now)"
    case "${todo[*]}" in
        rust) play_rust_cli seller_table ;;
        cli) play_rust_cli cli_seller_table ;;
        "rust cli") play_rust_cli seller_table cli_seller_table ;;
        *) "play_${todo[0]}" ;;
    esac
    rc=$?
    for f in "${todo[@]}"; do
        # Its runner passed and its TSV has every Workers cell now.
        if [[ $rc -eq 0 ]] && has_all "$f"; then record "$f" 1 0; else record "$f" 0 1; fi
    done
    echo "==> $STAGE ${todo[*]}: $(elapsed "$start") s"
}

if [[ ! -d "$CONSUMER/node_modules/polar-license" ]]; then
    echo "no npm package installed in $CONSUMER (scripts/test-wasm.sh's npm-install): the Workers cells cannot run"
    echo "seller-workers: 0 passed, ${#FACES[@]} failed"
    exit 1
fi
if [[ ! -x scripts/npm/node_modules/.bin/workerd ]]; then
    echo "no workerd in scripts/npm (scripts/setup-wasm.sh): the Workers cells cannot run"
    echo "seller-workers: 0 passed, ${#FACES[@]} failed"
    exit 1
fi

rest=()
together=()
for f in "${FACES[@]}"; do
    case "$f" in
        rust | cli) together+=("$f") ;;
        c | python | tauri) rest+=("$f") ;;
        *) echo "seller-workers: no face $f (rust cli c python tauri)" >&2; exit 2 ;;
    esac
done
[[ ${#together[@]} -eq 0 ]] || face "${together[@]}"
for f in "${rest[@]}"; do
    face "$f"
done
echo "seller-workers: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
