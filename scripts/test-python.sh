#!/usr/bin/env bash
# The Python package (bindings/python): its native module linted (fmt, clippy -D warnings),
# the abi3 wheel and the sdist built by the pinned maturin, the wheel installed into a fresh
# venv, and there pytest (against the emulator over loopback, and with the command line for the
# shared cache; the seller table's Python column, target/seller-table/python.tsv), mypy and pyright (strict, on the package, its stubs, the tests and the guide's
# examples). The last line is `N passed, N failed` (pytest's counts; a failed lint, build or
# type check counts as one failure). Tools: scripts/setup-python.sh (step_python).
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cd "$ROOT"

TOOLS="$ROOT/${PYTHON_TOOLS:-target/python-tools}"
PKG="$ROOT/bindings/python"
OUT="$ROOT/target/python"
VENV="$OUT/venv"
export CARGO_TARGET_DIR="$OUT/cargo"
export PYO3_PYTHON="$TOOLS/bin/python"

[[ -x "$TOOLS/bin/maturin" ]] || bash scripts/setup-python.sh || exit 1

failed=0
step() {
    local name="$1"
    shift
    echo "--- $name: $*"
    if "$@"; then echo "--- $name: ok"; else echo "--- $name: FAILED"; failed=$((failed + 1)); fi
}

# build CMD...: a step that only compiles, at the niceness BUILD_NICE (default 0): in the
# test command this stage runs beside the wasm stage, whose timed suites keep the cores.
build() { nice -n "${BUILD_NICE:-0}" "$@"; }
# The wheel the tests install: the release profile without LTO, with 16 codegen units and at
# opt-level 0 in the default run (the docs stage builds its release binaries the same way: what
# the tests see does not depend on the optimiser, and the release profile's other settings,
# no debug assertions and no overflow checks, stay as they ship): its cold build 104 s of CPU
# where opt-level 3 took 272 (measured 2026-11-29 on 2 loaded cores); FULL=1 builds it
# as it ships (opt-level 3, LTO, one codegen unit), whose size docs/performance.md gives.
if ! full; then
    export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_OPT_LEVEL=0
fi

step fmt cargo fmt --manifest-path "$PKG/Cargo.toml" --check
# Clippy: FULL=1 its own pass, as before; by default inside the wheel's build below, which
# clippy-driver compiles (RUSTC_WORKSPACE_WRAPPER, what `cargo clippy` itself sets: it lints the
# same crate, this workspace's one member, whose only target is the library; the core and the
# emulator are path dependencies here, linted by the clippy stage). Its own pass was a check of
# PyO3, the core and their dependencies beside the build's compile of them: 8 min 22 s of the
# stage's 17 in the run of 2026-11-29, about as much CPU as the wheel.
if full; then
    step clippy build cargo clippy --manifest-path "$PKG/Cargo.toml" --locked --all-targets -- -D warnings
    WHEEL_WRAPPER=()
else
    WHEEL_WRAPPER=(RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)")
fi
# The command line, for the shared-cache test (the workspace's debug build; in the test command
# the tests stage's, TEST_BINS: nothing to build here).
if [[ -n "${TEST_BINS:-}" && "$TEST_BINS" -ef "$ROOT/target/debug" && -x "$TEST_BINS/polar-license" ]]; then
    echo "--- cli: the tests stage's build ($TEST_BINS/polar-license)"
else
    step cli build env -u CARGO_TARGET_DIR cargo build -q -p polar-license-cli
fi

rm -rf "$OUT/wheels" "$OUT/sdist"
wheel_build() {
    build env "${WHEEL_WRAPPER[@]}" "$TOOLS/bin/maturin" build --release --locked -m "$PKG/Cargo.toml" \
        -o "$OUT/wheels" 2>&1 | tee "$OUT/wheel.log"
    return "${PIPESTATUS[0]}"
}
step wheel wheel_build
# Cargo's line for the crate when it warned: "warning: `polar-license-python` (lib) generated 1
# warning" (replayed when nothing was recompiled); any fails clippy, as -D warnings did.
clippy_in_wheel() {
    ! grep -E '^warning: `polar-license-python` .*generated [0-9]+ warnings?' "$OUT/wheel.log"
}
if ! full; then step clippy clippy_in_wheel; fi
step sdist build "$TOOLS/bin/maturin" sdist -m "$PKG/Cargo.toml" -o "$OUT/sdist"
wheel="$(ls "$OUT"/wheels/*.whl 2>/dev/null | head -n 1)"
[[ -n "$wheel" ]] && echo "wheel: $(basename "$wheel"), $(stat -c %s "$wheel") bytes"

# A fresh venv: the wheel as a user installs it, and what the tests import.
rm -rf "$VENV"
step venv python3 -m venv "$VENV"
step install "$VENV/bin/pip" install -q --disable-pip-version-check "$wheel" -r "$PKG/requirements-test.txt"

# The tests run from a copy outside the source tree: `import polar_license` can only be the
# installed wheel's.
rm -rf "$OUT/tests" && cp -r "$PKG/tests" "$OUT/tests"
log="$OUT/pytest.log"
# The seller's rows (tests/test_seller_table.py) write the table's Python column,
# python.tsv, where scripts/seller-table.sh reads the faces' files.
(cd "$OUT/tests" && POLAR_LICENSE_CLI="$ROOT/target/debug/polar-license" \
    POLAR_SELLER_ROWS="$ROOT/tests/vectors/seller-rows.json" \
    POLAR_SELLER_TABLE_DIR="${SELLER_TABLE_DIR:-$ROOT/target/seller-table}" \
    "$VENV/bin/python" -m pytest -p no:cacheprovider -q -rs) 2>&1 | tee "$log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || echo "--- pytest: FAILED"

# Strict types: the package (its .pyi stub and py.typed) and the tests, then the Python files
# of docs/guides/python.md and the README (written out here as the docs stage writes them),
# each against the fresh venv's packages.
guide="$OUT/guide"
rm -rf "$guide"
"$TOOLS/bin/python" - "$guide" "$ROOT/docs/guides/python.md" "$ROOT/README.md" <<'PY'
import pathlib, re, sys
out = pathlib.Path(sys.argv[1])
for doc in sys.argv[2:]:
    text = pathlib.Path(doc).read_text(encoding="utf-8")
    for scenario, path, code in re.findall(
            r"<!-- file: (\S+) (\S+\.py) -->\n```python\n(.*?)```", text, re.S):
        target = out / pathlib.Path(doc).stem / scenario / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8")
PY
# typecheck NAME PROJECT PATHS...: both checkers, strict, with PROJECT's settings.
typecheck() {
    local name="$1" project="$2"
    shift 2
    step "mypy-$name" "$TOOLS/bin/mypy" --config-file "$PKG/pyproject.toml" \
        --python-executable "$VENV/bin/python" --cache-dir "$OUT/mypy-cache" "$@"
    step "pyright-$name" "$TOOLS/bin/pyright" --project "$project" \
        --pythonpath "$VENV/bin/python" "$@"
}
typecheck package "$PKG/pyproject.toml" "$PKG/python/polar_license" "$PKG/tests"
# A guide's scenario is a project of its own (its modules import one another), with the
# package's pyright settings.
for dir in "$guide"/*/*; do
    [[ -d "$dir" ]] || continue
    printf '{"pythonVersion": "3.9", "typeCheckingMode": "strict"}\n' >"$dir/pyrightconfig.json"
    pushd "$dir" >/dev/null || continue
    typecheck "$(basename "$(dirname "$dir")")" "$dir/pyrightconfig.json" .
    popd >/dev/null || exit 1
done

# pytest's closing line: "23 passed in 7.1s", "1 failed, 22 passed, 1 skipped in …", "2 errors".
read -r passed tfailed < <(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '[0-9]+ (passed|failed|errors?)\b' |
    tail -n 1 | awk '{ p = 0; f = 0
        for (i = 2; i <= NF; i++) {
            if ($i ~ /^passed/) p += $(i - 1)
            if ($i ~ /^(failed|errors?)/) f += $(i - 1)
        }
        print p + 0, f + 0 }')
passed="${passed:-0}"
tfailed="${tfailed:-0}"
[[ "$passed" -gt 0 ]] || failed=$((failed + 1))
echo "$passed passed, $((tfailed + failed)) failed"
[[ $((tfailed + failed)) -eq 0 ]]
