#!/usr/bin/env bash
# What would be published, checked: bash scripts/package-check.sh
#
#   1. the crate: `cargo package --list` printed and asserted (the library, the command line,
#      the benches and examples the manifest names, the README and the licences; no tests,
#      scripts, CI, C or npm faces), then `cargo publish --dry-run`, which builds the packaged
#      crate on its own;
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

echo "==> cargo package --list"
if cargo package --list --allow-dirty 2>"$OUT/crate-list.err" | tee "$OUT/crate.list"; then
    echo "($(wc -l <"$OUT/crate.list") files)"
    assert_list crate "$OUT/crate.list" '^src/lib\.rs$' '^src/cli/main\.rs$' '^README\.md$' \
        '^LICENSE-MIT$' '^LICENSE-APACHE$' '^Cargo\.toml$' \
        -- '^tests/' '^scripts/' '^\.ci/' '^bindings/' '^pkg-template/' '^fuzz/' 'package-lock' \
        'node_modules' '\.mjs$' '\.c$'
else
    cat "$OUT/crate-list.err"
    bad "cargo package --list"
fi

echo "==> cargo publish --dry-run"
if cargo publish --dry-run --allow-dirty 2>&1 | tee "$OUT/publish.log" | tail -n 6 &&
    grep -q "aborting upload due to dry run" "$OUT/publish.log"; then
    ok "cargo publish --dry-run: $(grep -o 'Packaged [^)]*)' "$OUT/publish.log")"
else
    bad "cargo publish --dry-run"
fi

# The README's install command for the command line, as written (debug and this build's
# target dir only to reuse what the tests built; the features are what matters).
echo "==> cargo install --path . --features cli"
rm -rf "$OUT/install"
if cargo install --path . --features cli --locked --debug --root "$OUT/install" \
    --target-dir "${CARGO_TARGET_DIR:-target}" >"$OUT/install.log" 2>&1 &&
    "$OUT/install/bin/polar-license" --version | tee "$OUT/version.txt" | grep -q '^polar-license '; then
    ok "cargo install --path . --features cli: $(cat "$OUT/version.txt")"
else
    tail -n 20 "$OUT/install.log"
    bad "cargo install --path . --features cli"
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
