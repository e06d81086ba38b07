#!/usr/bin/env bash
# Prints the seller's rows (issue #54, "Done when" 2nd bullet: perpetual fallback and trials on
# every face from one table; issue #64: a key's devices, listed through a customer session or
# through the seller's relay (`relay serve`, or the npm relay, in front of the row's Polar), freed
# and activated here, device management off, a lost key recovered) as one markdown table:
# bash scripts/seller-table.sh
#
# The rows are tests/vectors/seller-rows.json; each face's runner plays them and writes what it
# got under target/seller-table/ (override with SELLER_TABLE_DIR):
#
#   rust.tsv   tests/seller_table.rs                    (scripts/test.sh `tests`)
#   cli.tsv    crates/cli/tests/cli_seller_table.rs     (scripts/test.sh `tests`)
#   c.tsv      bindings/c/tests/test_seller_table.c     (scripts/test-c.sh, plain build; also
#   c-asan.tsv, c-valgrind.tsv                           its ASan+UBSan and valgrind runs)
#   wasm.tsv   tests/wasm_seller_table.rs               (scripts/test-wasm.sh `wasm-node`: the
#                   Rust-on-wasm client in node; a wasm test writes no files, so it prints its
#   wasm-chromium.tsv                                    lines and test-wasm.sh keeps them; also
#                   `wasm-browser`, headless Chromium, and with FULL=1 wasm-firefox.tsv)
#   tauri.tsv  crates/tauri/tests/seller_table.rs       (scripts/test-tauri.sh: the plugin's
#                   commands on Tauri's mock runtime, the cell from its LicenseState)
#   npm.tsv    tests/js/seller-table.test.mjs           (scripts/test-wasm.sh `npm-node`: the
#                   packed package's LicenseClient, an emulator process per row)
#   python.tsv bindings/python/tests/test_seller_table.py (scripts/test-python.sh: the wheel
#                   in a fresh venv, its Licensing, an emulator of its own per row)
#
# Issue #68's values rows (`"world": "values"`: a flag's value granted, changed, revoked;
# credits with and without the seller's refusal rule, a retried report, a report while Polar is
# down; each lifecycle detail and a resume) run once a relay host: their cells are ROW@native
# (`relay serve`) and ROW@workers (the npm relay under workerd), against
# tests/js/values-world.mjs, which every runner starts. A Workers cell is played where workerd
# and the installed npm package are (CONSUMER): the npm runner in the wasm stage, the Rust,
# CLI, C, Python and Tauri runners by scripts/seller-workers.sh once that stage installed the
# package (the Tauri stage's runner itself when it was there by then). A missing one fails;
# SELLER_TABLE_WORKERS=0 shows it as not run instead (a local run of some stages without the
# wasm stage's package). A face in VALUES_PENDING below does not play them yet.
#
# scripts/test.sh runs this stage (`seller`) last, after the tests, c, tauri, wasm, python and
# seller-workers stages that write the TSVs.
#
# Columns of a TSV: face row expected got result. A cell passes when its row is there, its
# suite passed it and what it got is what it expected; the script exits 1 when a face's cell is
# missing or failed, when faces disagree on a row's expected verdict, or when a face has a row
# the table does not. A pending face (no runner yet) is shown as such and fails nothing; once
# its TSV exists, its cells count like any other's.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${SELLER_TABLE_DIR:-$ROOT/target/seller-table}"
TABLE="$ROOT/tests/vectors/seller-rows.json"

FACES=(rust cli c wasm tauri npm python)
FACES_PENDING=()
declare -A LABEL=([rust]=Rust [cli]=CLI [c]=C [npm]=npm [wasm]=Rust-on-wasm [tauri]=Tauri
    [python]=Python)

# The rows, in order, as "id<TAB>label", straight from the table; a row with `hosts` (the
# values rows, issue #68: the relay on each host) once a host, as ID@HOST.
mapfile -t ROWS < <(node -e '
    const t = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const r of t.rows) {
        if (!r.hosts) console.log(`${r.id}\t${r.label}`);
        else for (const h of r.hosts) console.log(`${r.id}@${h}\t${r.label} (relay: ${h === "workers" ? "npm relay under workerd" : "relay serve"})`);
    }
' "$TABLE")
# Faces whose runner does not play the values rows yet (issue #68): their cells are shown as
# pending and fail nothing (once the face's TSV has such a row, it counts like any other).
VALUES_PENDING=()
# Cells a face does not play yet, as FACE:ROW, each with its reason below: shown as pending and
# failing nothing while the face's TSV has no such row (once it has, the cell counts).
CELLS_PENDING=()
declare -A PENDING_WHY=()
# A values row on the Workers relay needs workerd and the installed npm package (CONSUMER): a
# face's runner plays it when both are there (scripts/test-wasm.sh's stages,
# scripts/seller-workers.sh) and writes no cell otherwise; a missing one fails, shown as not
# run with SELLER_TABLE_WORKERS=0.
if [[ ${#ROWS[@]} -eq 0 ]]; then
    echo "seller-table: no rows read from ${TABLE#"$ROOT"/}"
    exit 1
fi

# shellcheck source=scripts/table-report.sh
source "$ROOT/scripts/table-report.sh"

# not_played FACE ID: whether FACE's missing cell of row ID is one it does not play (a values
# row on a pending face, a Workers cell with SELLER_TABLE_WORKERS=0) rather than a failure.
not_played() {
    local file="$DIR/$1.tsv"
    if [[ " ${CELLS_PENDING[*]} " == *" $1:$2 "* && -z "$(field "$file" "$2" 3)" ]]; then
        cells+=" pending |"
        unplayed=$((unplayed + 1))
        return 0
    fi
    [[ "$2" == *@* && -z "$(field "$file" "$2" 3)" ]] || return 1
    if [[ " ${VALUES_PENDING[*]} " == *" $1 "* ]]; then
        cells+=" pending |"
    elif [[ "$2" == *@workers && "${SELLER_TABLE_WORKERS:-1}" == 0 ]]; then
        cells+=" not run |"
    else
        return 1
    fi
    unplayed=$((unplayed + 1))
}

# row_ok FILE ID: the row is there, its suite passed it, and it got what it expected.
row_ok() {
    [[ "$(field "$1" "$2" 5)" == pass && -n "$(field "$1" "$2" 3)" &&
        "$(field "$1" "$2" 3)" == "$(field "$1" "$2" 4)" ]]
}

# cell FACE FILE ID (row_cells): ✓ when the suite passed the row and got what it expected (`want`).
cell() {
    local got result
    got="$(field "$2" "$3" 4)"
    result="$(field "$2" "$3" 5)"
    if [[ "$result" == pass && "$got" == "$want" ]]; then
        cells+=" ✓ |"
        passed=$((passed + 1))
    else
        cells+=" $got ✗ |"
        failed=$((failed + 1))
        details+=("${LABEL[$1]} / $3: expected \`$want\`, got \`$got\`, suite says $result")
    fi
}

faces=("${FACES[@]}")
for face in "${FACES_PENDING[@]}"; do
    [[ -f "$DIR/$face.tsv" ]] && faces+=("$face")
done

echo
echo "## Perpetual fallback and trials, every face"
echo
header="| row | expected |"
rule="|---|---|"
for face in "${faces[@]}"; do
    header+=" ${LABEL[$face]} |"
    rule+="---|"
done
echo "$header"
echo "$rule"
ids=()
base_ids=()
unplayed=0
for row in "${ROWS[@]}"; do
    ids+=("${row%%$'\t'*}")
    [[ "${ids[-1]}" == *@* ]] || base_ids+=("${ids[-1]}")
    expected=""
    cells=""
    for face in "${faces[@]}"; do
        not_played "$face" "${ids[-1]}" && continue
        face_expects "$face" "$DIR/$face.tsv" "${ids[-1]}" || continue
        cell "$face" "$DIR/$face.tsv" "${ids[-1]}"
    done
    echo "| ${row#*$'\t'} | ${expected:-?} |$cells"
done

# A face's row the table does not have (a stale TSV, a renamed row) is a problem too.
for face in "${faces[@]}"; do
    file="$DIR/$face.tsv"
    [[ -f "$file" ]] || continue
    while IFS= read -r id; do
        [[ " ${ids[*]} " == *" $id "* ]] && continue
        failed=$((failed + 1))
        details+=("${LABEL[$face]} / $id: a row the table does not have")
    done < <(awk -F'\t' 'NR > 1 { print $2 }' "$file")
done

echo
echo "Each cell: ✓ when every step of the row answered as the table says on that face (the"
echo "expected column is the row's cell step: the verdict, licensed or trial or a reason code;"
echo "online or cache; fallback and the paid-through day; the trial, days counted from the"
echo "row's start). The steps are in tests/vectors/seller-rows.json."
for face in "${FACES_PENDING[@]}"; do
    [[ -f "$DIR/$face.tsv" ]] || echo "${LABEL[$face]}: no runner yet"
done
echo
echo "Values rows (issue #68, ROW@HOST): the row's Polar and two relays on the host (relay serve,"
echo "or the npm relay under workerd) are tests/js/values-world.mjs; the face reads the values"
echo "(entitlement), reports usage (record_usage) and reads the typed detail of a denial."
for face in "${VALUES_PENDING[@]}"; do
    echo "${LABEL[$face]}: the values rows are pending (its runner does not play them yet)"
done
for c in "${CELLS_PENDING[@]}"; do
    echo "pending: ${PENDING_WHY[$c]}"
done

# The C suite's sanitizer runs and the Rust-on-wasm runner in the browsers: every row must be
# there and pass, when they ran.
# (The values rows' cells only where the face plays them.)
check_variants "$DIR" base_ids c-asan c-valgrind wasm-chromium wasm-firefox
report_end seller-table $((${#ROWS[@]} * ${#faces[@]} - unplayed))
