#!/usr/bin/env bash
# What would be published, checked: bash scripts/package-check.sh
#
#   1. the crates: `cargo package --list` of each publishable one printed and asserted (the
#      library's holds the core and its two shells, the benches and examples, the README and
#      the licences, and no test, script, CI, C, npm, command-line or emulator source; the
#      emulator's, the command line's and the C ABI's hold their own), then
#      `cargo publish --dry-run --workspace`, which builds each packaged crate on its own against
#      the others as packaged; `cargo install --path crates/cli` with no flags;
#   2. the npm package (target/npm/pkg, built by scripts/build-npm.sh when missing):
#      `npm publish --dry-run` printed and its file list asserted.
# The last line is `package: N passed, N failed`.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
bad() { FAILED=$((FAILED + 1)); echo "not ok - $1"; }

# assert_list NAME LIST_FILE REQUIRED_REGEX... -- FORBIDDEN_REGEX...
assert_list() {
    local name="$1" list="$2" mode=require pattern
    shift 2
    for pattern in "$@"; do
        if [[ "$pattern" == -- ]]; then mode=forbid; continue; fi
        if [[ $mode == require ]]; then
            grep -Eq "$pattern" "$list" && ok "$name ships $pattern" || bad "$name lacks $pattern"
        else
            if grep -Eq "$pattern" "$list"; then
                bad "$name ships $pattern: $(grep -E "$pattern" "$list" | head -n 3 | tr '\n' ' ')"
            else
                ok "$name leaves out $pattern"
            fi
        fi
    done
}

OUT="target/package-check"
mkdir -p "$OUT"

# list CRATE: `cargo package --list` of one crate into $OUT/CRATE.list (printed).
list() {
    echo "==> cargo package --list -p $1"
    if cargo package --list --allow-dirty -p "$1" 2>"$OUT/$1.err" | tee "$OUT/$1.list"; then
        echo "($(wc -l <"$OUT/$1.list") files)"
    else
        cat "$OUT/$1.err"
        bad "cargo package --list -p $1"
        return 1
    fi
}

# Every face but the library's own is another crate: none of its source is in this one.
if list polar-license; then
    assert_list polar-license "$OUT/polar-license.list" '^src/lib\.rs$' '^src/native/client\.rs$' \
        '^src/wasm/client\.rs$' '^README\.md$' '^LICENSE-MIT$' '^LICENSE-APACHE$' '^Cargo\.toml$' \
        -- '^tests/' '^scripts/' '^\.ci/' '^bindings/' '^crates/' '^pkg-template/' '^fuzz/' \
        '^src/(ffi|cli|emulator)/' '^src/wasm/(engine|host|bindings)\.rs$' 'package-lock' \
        'node_modules' '\.mjs$' '\.c$' '\.h$'
fi
if list polar-license-emulator; then
    assert_list polar-license-emulator "$OUT/polar-license-emulator.list" '^src/lib\.rs$' \
        '^src/http\.rs$' '^README\.md$' -- '^tests/'
fi
if list polar-license-cli; then
    assert_list polar-license-cli "$OUT/polar-license-cli.list" '^src/main\.rs$' '^README\.md$' \
        -- '^tests/'
fi
if list polar-license-relay; then
    assert_list polar-license-relay "$OUT/polar-license-relay.list" '^src/lib\.rs$' \
        '^src/server\.rs$' '^README\.md$' -- '^tests/'
fi
if list polar-license-c; then
    assert_list polar-license-c "$OUT/polar-license-c.list" '^src/lib\.rs$' \
        '^include/polar_license\.h$' '^cbindgen\.toml$' '^install\.sh$' '^README\.md$' \
        -- '^tests/' '^examples/'
fi

echo "==> cargo publish --dry-run --workspace"
# The crates are verified against each other as packaged, through a local registry under
# target/package that cargo unpacks into its home (a directory named `-<hash>`): an earlier
# run's copy of the same version would be reused as it was, so both go first.
# And cargo takes a registry's crates as never changing: the build of an earlier packaged copy
# would be reused too, so this workspace's fingerprints go as well (they rebuild in seconds).
rm -rf "${CARGO_TARGET_DIR:-target}/package" "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/polar-license-* \
    "${CARGO_TARGET_DIR:-target}"/debug/.fingerprint/polar-license-*
# The Tauri plugin: its own stage lists its package (scripts/test-tauri.sh); verifying it
# here would build Tauri once more.
if cargo publish --dry-run --workspace --exclude tauri-plugin-polar-license --allow-dirty 2>&1 | tee "$OUT/publish.log" | tail -n 12 &&
    [[ "$(grep -c "aborting upload due to dry run" "$OUT/publish.log")" -eq 6 ]]; then
    ok "cargo publish --dry-run --workspace: $(grep -o 'Uploading [^ ]*' "$OUT/publish.log" | cut -d' ' -f2 | tr '\n' ' ')"
else
    bad "cargo publish --dry-run --workspace (6 crates)"
fi

# The README's install command for the command line, as written: no feature flag (debug and
# this build's target dir only to reuse what the tests built).
# FULL=1 only: the docs stage runs README's `cargo install --locked --path crates/cli` as
# pasted (a release build, the docs-build stage's); this one, a debug build of the CLI with its
# own features that no other stage of the default run makes, cost a compile of the CLI, the
# relay, the emulator, the core and their dependencies.
if [[ "${FULL:-0}" == 1 ]]; then
    echo "==> cargo install --path crates/cli"
    rm -rf "$OUT/install"
    if cargo install --path crates/cli --locked --debug --root "$OUT/install" \
        --target-dir "${CARGO_TARGET_DIR:-target}" >"$OUT/install.log" 2>&1 &&
        "$OUT/install/bin/polar-license" --version | tee "$OUT/version.txt" | grep -q '^polar-license '; then
        ok "cargo install --path crates/cli: $(cat "$OUT/version.txt")"
    else
        tail -n 20 "$OUT/install.log"
        bad "cargo install --path crates/cli"
    fi
fi

PKG="target/npm/pkg"
if [[ ! -f "$PKG/package.json" ]]; then
    echo "==> $PKG missing: bash scripts/build-npm.sh"
    bash scripts/build-npm.sh >"$OUT/build-npm.log" 2>&1 || { tail -n 20 "$OUT/build-npm.log"; }
fi
echo "==> npm publish --dry-run ($PKG)"
if (cd "$PKG" && npm publish --dry-run 2>&1) | tee "$OUT/npm.log" | grep -E 'notice|\+ ' &&
    grep -q "(dry-run)" "$OUT/npm.log"; then
    ok "npm publish --dry-run"
    sed -n 's/^npm notice [0-9.]*[kMG]*B \(.*\)$/\1/p' "$OUT/npm.log" >"$OUT/npm.list"
    assert_list npm "$OUT/npm.list" '^package\.json$' '^README\.md$' '^LICENSE-MIT$' \
        '^LICENSE-APACHE$' '^index\.d\.ts$' '^license\.js$' '\.wasm$' \
        -- '^src/' '^tests?/' '\.rs$' '\.map$' 'node_modules'
else
    bad "npm publish --dry-run"
fi

echo
echo "package: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
