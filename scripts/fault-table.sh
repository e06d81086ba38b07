#!/usr/bin/env bash
# Prints the fault matrix (issue #6, item 3) as one markdown table: bash scripts/fault-table.sh
#
# Reads the rows the three suites wrote under target/fault-matrix/ (override with
# FAULT_MATRIX_DIR):
#
#   rust.tsv        tests/fault_matrix.rs            (cargo nextest / scripts/test.sh `tests`)
#   c.tsv           bindings/c/tests/test_faults.c   (scripts/test-c.sh, plain build; also
#   c-asan.tsv, c-valgrind.tsv                        its ASan+UBSan and valgrind runs)
#   js.tsv          tests/js/faults.test.mjs         (scripts/test-wasm.sh, npm-node; also
#   js-node18.tsv                                     its Node 18 run, npm-node18)
#   js-chromium.tsv, js-firefox.tsv, js-webkit.tsv    the same rows in each browser engine
#                   (tests/browser/faults.test.mjs, scripts/test-wasm.sh npm-browser)
#
# Rows are faults, columns the three faces. The suites assert; this is the report, but it also
# exits 1 when a face's row is missing or failed (a row passes only when its suite said so
# and its codes, cache and request count are the expected ones), when the faces disagree on
# a row's expected code, or when a sanitizer run that exists has a missing or failed row.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${FAULT_MATRIX_DIR:-$ROOT/target/fault-matrix}"

# The rows, in order: id and label (the ids are the suites').
ROWS=(
    "connection_refused|connection refused"
    "hang_timeout|accepts, never answers (timeout)"
    "slow_body|slow body (past the timeout)"
    "status_500|500"
    "status_502|502"
    "status_503|503"
    "rate_limited|429 without retry-after"
    "rate_limited_retry_after|429 with retry-after"
    "malformed_json|malformed JSON"
    "truncated_body|truncated body"
    "huge_body|50 MB body"
    "unexpected_status|unexpected status (418)"
    "status_401|401"
)
IDS=("${ROWS[@]%%|*}")
FACES=(rust c js)
declare -A LABEL=([rust]=Rust [c]=C [js]=JS)

# shellcheck source=scripts/table-report.sh
source "$ROOT/scripts/table-report.sh"

# The TSVs' columns (`field FILE ID N` reads the Nth): face fault expected got no_cache cached
# cache_kept requests expected_requests result

# row_ok FILE ID: the row is there, its suite passed it, and it says what it should.
row_ok() {
    [[ -f "$1" ]] || return 1
    awk -F'\t' -v id="$2" '
        NR > 1 && $2 == id {
            found = 1
            ok = $10 == "pass" && $4 == $3 && $5 == $3 && $7 == "yes" && $8 == $9
            # With a valid cache: licensed from it for every code that is no verdict
            # of Polar: the unverified ones and protocol_error (docs/interfaces.md §4).
            fallback = $3 == "offline" || $3 == "rate_limited" || $3 == "server_error" ||
                $3 == "protocol_error"
            ok = ok && (fallback ? $6 == "licensed/cache" : $6 == $3)
        }
        END { exit !(found && ok) }' "$1"
}

# cell FACE FILE ID (row_cells): the row's validate code, ✓ or ✗, its requests, what became of
# the cache.
cell() {
    local got cached kept requests cache mark
    got="$(field "$2" "$3" 4)"
    cached="$(field "$2" "$3" 6)"
    kept="$(field "$2" "$3" 7)"
    requests="$(field "$2" "$3" 8)"
    if [[ "$kept" != yes ]]; then
        cache="cache LOST"
    elif [[ "$cached" == licensed/cache ]]; then
        cache="cache grants"
    else
        cache="cache kept"
    fi
    if row_ok "$2" "$3"; then
        mark="✓"
        passed=$((passed + 1))
    else
        mark="✗"
        failed=$((failed + 1))
        details+=("${LABEL[$1]} / $3: $(awk -F'\t' -v id="$3" 'NR > 1 && $2 == id {
            printf "expected %s; validate %s, check without a cache %s, with a cache %s, cache kept %s, %s requests (expected %s), suite says %s",
                $3, $4, $5, $6, $7, $8, $9, $10 }' "$2")")
    fi
    cells+=" $got $mark $requests req · $cache |"
}

echo
echo "## Fault matrix"
echo
echo "| fault | expected | Rust | C | JS |"
echo "|---|---|---|---|---|"
for row in "${ROWS[@]}"; do
    row_cells "${row%%|*}" "${FACES[@]}"
    echo "| ${row#*|} | ${expected:-?} |$cells"
done
echo
echo "Each cell: the reason code of an online validate, ✓ when every check of the row passed on"
echo "that face, the requests the emulator received during the faulted calls (validate, check"
echo "without a cache, check with a valid cache; the 429 rows' second checks, inside the block,"
echo "must send none), and what check did with the valid cache: \`cache grants\` (licensed from"
echo "it, within the grace: no fault here is a verdict of Polar's, protocol_error included) or"
echo "\`cache kept\` (not licensed, the verdict still there and licensing again once the fault is gone)."

# The C suite's sanitizer runs, the JS suite's Node 18 run and its browser engines: every row
# must be there and pass, when they ran.
check_variants "$DIR" IDS c-asan c-valgrind js-node18 js-chromium js-firefox js-webkit
report_end fault-table $((${#IDS[@]} * ${#FACES[@]}))
