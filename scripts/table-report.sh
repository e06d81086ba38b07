# Shell functions the two cross-face reports share (sourced, never run): scripts/fault-table.sh
# and scripts/seller-table.sh read the TSVs the faces' suites wrote (header line, then one row a
# line: face, row id, expected, got, ...) and print one markdown table.
#   source "$(dirname "${BASH_SOURCE[0]}")/table-report.sh"
# The caller sets ROOT, DIR (where the TSVs are, FACE.tsv), LABEL (face -> column name), a
# `row_ok FILE ID` function (the row is there and passed) and a `cell FACE FILE ID` function (a
# present row's cell); all count into the tally below.

failed=0
passed=0
details=()

# field FILE ID N: the Nth tab-separated field of row ID in FILE (empty when absent).
field() {
    [[ -f "$1" ]] || return 0
    awk -F'\t' -v id="$2" -v n="$3" 'NR > 1 && $2 == id { print $n; exit }' "$1"
}

# face_expects FACE FILE ID: sets `want` to the row's expected value on FACE. Returns 1 (a
# missing cell, counted, `cells` told) when FILE has no such row; counts a problem when FACE
# expects another value than a face before it in the row (`expected`, set by the first).
face_expects() {
    want="$(field "$2" "$3" 3)"
    if [[ -z "$want" ]]; then
        cells+=" missing ✗ |"
        failed=$((failed + 1))
        details+=("${LABEL[$1]} / $3: no row in ${2#"$ROOT"/}")
        return 1
    fi
    if [[ -z "$expected" ]]; then
        expected="$want"
    elif [[ "$want" != "$expected" ]]; then
        failed=$((failed + 1))
        details+=("${LABEL[$1]} / $3: expects \`$want\` where another face expects \`$expected\`")
    fi
}

# row_cells ID FACE...: the row's cells, one a FACE, in `cells`, and its expected value in
# `expected`: `missing` where the face's TSV has no such row, else the caller's `cell`.
row_cells() {
    local id="$1" face file
    shift
    expected=""
    cells=""
    for face in "$@"; do
        file="$DIR/$face.tsv"
        face_expects "$face" "$file" "$id" || continue
        cell "$face" "$file" "$id"
    done
}

# check_variants DIR IDS_NAME VARIANT...: every row (the ids in the array named IDS_NAME) must
# be there and pass (`row_ok`) in each VARIANT's TSV under DIR that exists (a sanitizer run, a
# browser engine); prints a line a variant.
check_variants() {
    local dir="$1" variant file ok id
    local -n ids_="$2"
    shift 2
    for variant in "$@"; do
        file="$dir/$variant.tsv"
        if [[ ! -f "$file" ]]; then
            echo "$variant: not run"
            continue
        fi
        ok=0
        for id in "${ids_[@]}"; do
            if row_ok "$file" "$id"; then
                ok=$((ok + 1))
            else
                details+=("$variant / $id: missing or failed")
            fi
        done
        echo "$variant: $ok of ${#ids_[@]} rows pass"
        if [[ $ok -ne ${#ids_[@]} ]]; then failed=$((failed + ${#ids_[@]} - ok)); fi
    done
}

# report_end NAME CELLS: prints the problems, then `NAME: P of CELLS cells pass, F problems`;
# returns 1 when there was a problem.
report_end() {
    local d
    if [[ ${#details[@]} -gt 0 ]]; then
        echo
        for d in "${details[@]}"; do
            echo "FAIL $d"
        done
    fi
    echo
    echo "$1: $passed of $2 cells pass, $failed problems"
    [[ $failed -eq 0 ]]
}
