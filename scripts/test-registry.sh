#!/usr/bin/env bash
# The registry stage (issue #79): the release's artifacts installed as users install them, from
# registries on loopback, by the names the docs give:
#
#   bash scripts/test-registry.sh                  the host's artifacts (target/release-artifacts,
#                                                  made by scripts/release.sh --host-only, or
#                                                  with --reuse from what the stages built)
#   RELEASE_MATRIX=1 bash scripts/test-registry.sh every platform's artifacts too (below)
#
#   - SHA256SUMS verifies, every artifact has its CycloneDX SBOM naming its SHA-256;
#   - npm: a Verdaccio (scripts/release/tools, pinned) receives both tarballs by `npm publish`;
#     a fresh project runs `npm install polar-license` and README's first check (its
#     my-app/check.js, against the package's own local Polar), and `npm install
#     @polar-license/tauri` imports;
#   - pip: a PEP 503 index served over http receives the wheels and the sdist; a fresh venv runs
#     `pip install polar-license` (the wheel) and README's Python check (app.py);
#   - cargo: a fresh project builds README's Rust example against the packaged crates (each
#     .crate unpacked, `[patch.crates-io]`, as crates.io would serve them) and runs it;
#   - the command line: install.sh installs it into a fresh prefix from the artifacts (a tampered
#     archive installs nothing), and the installed `polar-license emulator` serves the C check;
#   - C: the unpacked archive links the quick start (bindings/c/examples/launch.c) by pkg-config
#     (shared and static) and by CMake's find_package, and each program runs against it;
#   - with RELEASE_MATRIX=1: 6 wheel platform tags plus the sdist; the musl CLI runs here; the
#     Windows CLI and C quick start run under wine; the Windows wheel's module is a PE32+ that
#     imports python3.dll; the aarch64 and macOS files are inspected (architecture, the wheel's
#     tag); the sdist builds and installs with pip (`pip install --no-binary`).
#
# Each check prints `ok - …` or `not ok - …` (its log in target/registry-logs; the projects in
# $TMPDIR/polar-license-registry); the last line is `registry: N passed, N failed`.
# (One block, read whole before it runs: an edit of this file during a run changes nothing.)
{
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

ART="$(cd "${RELEASE_ARTIFACTS:-target/release-artifacts}" 2>/dev/null && pwd)" || {
    echo "no ${RELEASE_ARTIFACTS:-target/release-artifacts}: bash scripts/release.sh --host-only first" >&2
    echo "registry: 0 passed, 1 failed"
    exit 1
}
# Outside the checkout: under it, `cargo new` would make the project a member of this workspace.
WORK="${REGISTRY_WORK_DIR:-${TMPDIR:-/tmp}/polar-license-registry}"
rm -rf "$WORK"
mkdir -p "$WORK"
MATRIX="${RELEASE_MATRIX:-0}"
PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
bad() { FAILED=$((FAILED + 1)); echo "not ok - $1"; }
# check NAME CMD...: one check, its output in $LOGS/NAME.log (shown when it fails).
LOGS="$ROOT/target/registry-logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"
# REGISTRY_ONLY=REGEX runs only the checks whose name matches (by hand, while fixing one).
check() {
    local name="$1" log="$LOGS/${1//[^A-Za-z0-9._-]/_}.log" start
    shift
    [[ -z "${REGISTRY_ONLY:-}" || "$name" =~ $REGISTRY_ONLY ]] || return 0
    start="$(now)"
    # (In a subshell: a check's cd and exports stay its own.)
    if ("$@") >"$log" 2>&1; then
        ok "$name ($(elapsed "$start") s)"
    else
        bad "$name ($(elapsed "$start") s)"
        tail -n 25 "$log" | sed 's/^/    /'
    fi
}
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
HOST="x86_64-unknown-linux-gnu"
# free_port: a port nothing listens on now.
free_port() { node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
# wait_http URL: up to 30 s for a server to answer.
wait_http() {
    local i
    for i in $(seq 1 300); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# --- checksums and SBOMs ---------------------------------------------------------------------
check "SHA256SUMS verifies" bash -c "cd '$ART' && sha256sum --quiet -c SHA256SUMS"
sboms() {
    local f sum
    while read -r sum f; do
        case "$f" in SHA256SUMS | RELEASE-NOTES.md | sbom/* | crates/PUBLISH-ORDER | cli/install.sh) continue ;; esac
        [[ -f "$ART/sbom/$(basename "$f").cdx.json" ]] || { echo "no SBOM for $f"; return 1; }
        node -e 'const b = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
            if (b.bomFormat !== "CycloneDX" || b.specVersion !== "1.5") throw new Error("not CycloneDX 1.5");
            if (b.metadata.component.hashes[0].content !== process.argv[2]) throw new Error("the SBOM names another file");
            if (!/^urn:uuid:/.test(b.serialNumber)) throw new Error("no serial number");
            console.log(process.argv[1], b.components.length, "components")' \
            "$ART/sbom/$(basename "$f").cdx.json" "$sum" || return 1
    done <"$ART/SHA256SUMS"
}
check "a CycloneDX SBOM per artifact, naming its SHA-256" sboms
check "release notes: CHANGELOG.md's entry for $VERSION and every artifact's size" \
    bash -c "grep -q '^## \[$VERSION\]' '$ART/RELEASE-NOTES.md' && grep -c '^| \`' '$ART/RELEASE-NOTES.md'"
check "crates: PUBLISH-ORDER puts each crate after its dependencies" bash -c "
    head -n 1 '$ART/crates/PUBLISH-ORDER' | grep -qx polar-license-rules &&
    [[ \$(grep -n -x polar-license '$ART/crates/PUBLISH-ORDER' | cut -d: -f1) -lt \$(grep -n -x polar-license-cli '$ART/crates/PUBLISH-ORDER' | cut -d: -f1) ]] &&
    [[ \$(wc -l <'$ART/crates/PUBLISH-ORDER') -eq \$(ls '$ART'/crates/*.crate | wc -l) ]]"

# --- the release workflow, linted -------------------------------------------------------------
# actionlint (scripts/release/requirements-lint.txt, pinned by hash) in a venv of its own; its passes
# of shellcheck and pyflakes off (neither program is installed; the run lines call scripts).
lint_workflows() {
    local venv="$ROOT/target/release-tools/actionlint"
    if [[ ! -x "$venv/bin/actionlint" ]]; then
        python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check \
            --require-hashes -r scripts/release/requirements-lint.txt || return 1
    fi
    "$venv/bin/actionlint" -version | head -n 1
    "$venv/bin/actionlint" -shellcheck= -pyflakes= .github/workflows/*.yml
}
check "actionlint: .github/workflows/*.yml" lint_workflows

# --- npm through Verdaccio -------------------------------------------------------------------
TOOLS="$ROOT/scripts/release/tools"
if [[ ! -x "$TOOLS/node_modules/.bin/verdaccio" ]]; then
    (cd "$TOOLS" && npm ci --no-audit --no-fund --silent) >"$LOGS/tools.log" 2>&1 ||
        { bad "the stage's tools (npm ci in scripts/release/tools)"; tail -n 20 "$LOGS/tools.log"; }
fi
NPM_PORT="$(free_port)"
NPM_URL="http://127.0.0.1:$NPM_PORT"
mkdir -p "$WORK/verdaccio"
# Our two packages are served from what is published here only; anything else (the Tauri guest's
# peer @tauri-apps/api) from the registry npm is configured with.
cat >"$WORK/verdaccio/config.yaml" <<EOF
storage: $WORK/verdaccio/storage
auth:
  htpasswd:
    file: $WORK/verdaccio/htpasswd
    max_users: 10
uplinks:
  upstream:
    url: $(npm config get registry)
packages:
  'polar-license':
    access: \$all
    publish: \$authenticated
  '@polar-license/*':
    access: \$all
    publish: \$authenticated
  '**':
    access: \$all
    proxy: upstream
log: { type: stdout, format: pretty, level: warn }
EOF
"$TOOLS/node_modules/.bin/verdaccio" --config "$WORK/verdaccio/config.yaml" --listen "127.0.0.1:$NPM_PORT" \
    >"$LOGS/verdaccio.log" 2>&1 &
PIDS+=($!)
npm_publish() {
    wait_http "$NPM_URL/-/ping" || { echo "Verdaccio did not start"; cat "$LOGS/verdaccio.log"; return 1; }
    local token
    token="$(curl -fsS -X PUT -H 'content-type: application/json' \
        -d '{"name":"release","password":"release-stage"}' "$NPM_URL/-/user/org.couchdb.user:release" |
        node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).token)')" || return 1
    printf '//127.0.0.1:%s/:_authToken=%s\n' "$NPM_PORT" "$token" >"$WORK/npmrc"
    local t
    for t in "$ART"/npm/*.tgz; do
        npm publish "$t" --registry "$NPM_URL" --userconfig "$WORK/npmrc" || return 1
    done
    npm view polar-license version --registry "$NPM_URL" --userconfig "$WORK/npmrc"
}
check "npm publish of both tarballs to Verdaccio" npm_publish
npm_consumer() {
    local dir="$WORK/npm-app"
    mkdir -p "$dir" && cd "$dir" || return 1
    export npm_config_registry="$NPM_URL" npm_config_userconfig="$WORK/npmrc" npm_config_cache="$WORK/npm-cache"
    npm init -y --silent >/dev/null && npm pkg set type=module &&
        npm install --no-audit --no-fund polar-license || return 1
    node "$ROOT/scripts/release/block.mjs" "$ROOT/README.md" file npm my-app/check.js >check.js &&
        node check.js | tee out.txt && node "$ROOT/scripts/release/block.mjs" "$ROOT/README.md" expect npm <out.txt
}
check "npm install polar-license in a fresh project: README's check prints licensed (online)" npm_consumer
npm_tauri() {
    local dir="$WORK/npm-tauri"
    mkdir -p "$dir" && cd "$dir" || return 1
    export npm_config_registry="$NPM_URL" npm_config_userconfig="$WORK/npmrc" npm_config_cache="$WORK/npm-cache"
    npm init -y --silent >/dev/null && npm install --no-audit --no-fund @polar-license/tauri &&
        node --input-type=module -e "const m = await import('@polar-license/tauri'); if (!Object.keys(m).length) process.exit(1); console.log(Object.keys(m).join(' '))"
}
check "npm install @polar-license/tauri in a fresh project imports" npm_tauri

# --- pip through a served index ---------------------------------------------------------------
PY_PORT="$(free_port)"
PY_URL="http://127.0.0.1:$PY_PORT/simple/"
mkdir -p "$WORK/index/simple/polar-license" "$WORK/index/files"
{
    echo '<!DOCTYPE html><html><body>'
    for f in "$ART"/python/*; do
        cp "$f" "$WORK/index/files/"
        echo "<a href=\"../../files/$(basename "$f")#sha256=$(sha256sum "$f" | cut -d' ' -f1)\">$(basename "$f")</a>"
    done
    echo '</body></html>'
} >"$WORK/index/simple/polar-license/index.html"
python3 -m http.server --bind 127.0.0.1 --directory "$WORK/index" "$PY_PORT" >"$LOGS/index.log" 2>&1 &
PIDS+=($!)
pip_consumer() {
    wait_http "$PY_URL/polar-license/" || return 1
    local dir="$WORK/py-app"
    mkdir -p "$dir" && cd "$dir" || return 1
    python3 -m venv .venv &&
        .venv/bin/pip install -q --disable-pip-version-check --no-cache-dir --only-binary polar-license \
            --index-url "$PY_URL" polar-license || return 1
    .venv/bin/pip show polar-license | grep -E '^(Name|Version)'
    node "$ROOT/scripts/release/block.mjs" "$ROOT/README.md" file python app.py >app.py &&
        .venv/bin/python app.py | tee out.txt &&
        node "$ROOT/scripts/release/block.mjs" "$ROOT/README.md" expect python <out.txt
}
check "pip install polar-license from the index in a fresh venv: README's Python check" pip_consumer

# --- cargo against the packaged crates ----------------------------------------------------------
# The crates are built where the docs stage builds the crates it packs (target/docs/crates, in
# the tests' target directory), so that its build of them is fresh here and only the project
# itself compiles (from a directory of its own, each crate compiled again: 60 to 90 s of CPU). A
# .crate's files all carry cargo's fixed time (2006), so cargo would take a changed file there
# for the one it built: each .crate is unpacked apart first and used there only when its files
# are the same, byte for byte; otherwise it replaces that copy, its times set to now.
CRATES_DIR="${REGISTRY_CRATES_DIR:-$ROOT/target/docs/crates}"
cargo_consumer() {
    local dir="$WORK/cargo" c name
    mkdir -p "$CRATES_DIR" "$dir/.cargo" "$dir/unpacked" || return 1
    {
        echo '[patch.crates-io]'
        for c in "$ART"/crates/*.crate; do
            name="$(basename "$c" .crate)"
            tar -xzf "$c" -C "$dir/unpacked" || return 1
            if diff -rq "$dir/unpacked/$name" "$CRATES_DIR/$name" >/dev/null 2>&1; then
                echo "$name: the docs stage's copy, the same files" >&2
            else
                rm -rf "${CRATES_DIR:?}/$name" && cp -r "$dir/unpacked/$name" "$CRATES_DIR/" &&
                    find "$CRATES_DIR/$name" -type f -exec touch {} + || return 1
                echo "$name: unpacked afresh" >&2
            fi
            echo "${name%-"$VERSION"} = { path = \"$CRATES_DIR/$name\" }"
        done
    } >"$dir/.cargo/config.toml"
    cd "$dir" && cargo new -q --vcs none my-app && cd my-app || return 1
    # The published forms, as README's Rust block names them once published.
    printf 'polar-license = "0.1"\npolar-license-emulator = "0.1"\n' >>Cargo.toml
    node "$ROOT/scripts/release/block.mjs" "$ROOT/README.md" file rust my-app/src/main.rs >src/main.rs &&
        cargo run -q | tee out.txt && node "$ROOT/scripts/release/block.mjs" "$ROOT/README.md" expect rust <out.txt &&
        # Each dependency is the unpacked .crate, none the checkout.
        cargo metadata --format-version 1 | node -e '
            const m = JSON.parse(require("fs").readFileSync(0, "utf8"));
            const ours = m.packages.filter((p) => p.name.startsWith("polar-license") && p.name !== "my-app");
            for (const p of ours) if (!p.manifest_path.startsWith(process.argv[1])) throw new Error(`${p.name} from ${p.manifest_path}`);
            console.log(ours.map((p) => p.name).join(" "), "from the packaged crates")' "$CRATES_DIR/"
}
# The tests' target directory: the dependencies from crates.io are already built there.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
check "cargo: README's Rust example built against the packaged crates runs" cargo_consumer

# The Tauri plugin as a Tauri app's Cargo.toml names it: resolved (not built: Tauri needs
# WebKitGTK, the tauri stage builds the plugin) to the packaged crate, with Tauri from crates.io.
tauri_resolves() {
    local dir="$WORK/cargo"
    cd "$dir" && cargo new -q --vcs none tauri-app && cd tauri-app || return 1
    printf 'tauri-plugin-polar-license = "0.1"\n' >>Cargo.toml
    cargo metadata --format-version 1 | node -e '
        const m = JSON.parse(require("fs").readFileSync(0, "utf8"));
        const p = m.packages.find((q) => q.name === "tauri-plugin-polar-license");
        if (!p || !p.manifest_path.startsWith(process.argv[1])) throw new Error(`the plugin from ${p && p.manifest_path}`);
        const tauri = m.packages.find((q) => q.name === "tauri");
        console.log(`${p.name} ${p.version} from the packaged crate, tauri ${tauri.version} from crates.io`)' "$CRATES_DIR/"
}
check "cargo: tauri-plugin-polar-license 0.1 resolves to the packaged crate" tauri_resolves
if [[ "$MATRIX" == 1 ]]; then
    # The command line's crate as `cargo install` builds it, from the packaged crates (debug:
    # what is checked is that it packs and builds, the archives ship the release build). Its
    # copy outside the checkout (cargo_consumer's): one inside it would belong to no workspace.
    cli_install() {
        cd "$WORK/cargo" &&
            cargo install --debug --root "$WORK/cargo-root" --path "$WORK/cargo/unpacked/polar-license-cli-$VERSION" &&
            "$WORK/cargo-root/bin/polar-license" --version
    }
    check "cargo install polar-license-cli from the packaged crates (RELEASE_MATRIX=1)" cli_install
fi

# --- the command line's install script ------------------------------------------------------
PREFIX="$WORK/prefix"
check "install.sh installs the CLI into a fresh prefix" bash -c "
    sh '$ART/cli/install.sh' --from '$ART' --prefix '$PREFIX' --target $HOST &&
    '$PREFIX/bin/polar-license' --version | grep -x 'polar-license $VERSION'"
tampered() {
    local copy="$WORK/tampered"
    local name="polar-license-cli-$VERSION-$HOST"
    # A well-formed archive whose binary is not the release's (one byte more): only the
    # checksum tells it apart.
    mkdir -p "$copy/cli" "$copy/unpacked" && cp "$ART/SHA256SUMS" "$copy/" &&
        tar -xzf "$ART/cli/$name.tar.gz" -C "$copy/unpacked" &&
        printf 'x' >>"$copy/unpacked/$name/bin/polar-license" &&
        tar -czf "$copy/cli/$name.tar.gz" -C "$copy/unpacked" "$name" || return 1
    if sh "$ART/cli/install.sh" --from "$copy" --prefix "$WORK/prefix-tampered" --target $HOST; then
        echo "a tampered archive was installed"
        return 1
    fi
    [[ ! -e "$WORK/prefix-tampered/bin/polar-license" ]]
}
check "install.sh refuses an archive that does not match SHA256SUMS" tampered

# --- C: the archive by pkg-config and CMake ----------------------------------------------------
C_DIR="$WORK/c"
mkdir -p "$C_DIR"
tar -xzf "$ART/c/polar-license-c-$VERSION-$HOST.tar.gz" -C "$C_DIR"
C_PREFIX="$C_DIR/polar-license-c-$VERSION-$HOST"
EMU_PORT="$(free_port)"
"$PREFIX/bin/polar-license" emulator --port "$EMU_PORT" >"$LOGS/emulator.log" 2>&1 &
PIDS+=($!)
# run_launch PROGRAM: the quick start against the installed CLI's emulator, each with a cache
# of its own (a fresh HOME), as README's C block shows it. (Its health route, which answers a
# GET: `/__emulator/keys` takes only POST, so each of the three waited out wait_http's 30 s on
# its 405, 93 s of the stage's 222 in the run of 2026-11-29.)
run_launch() {
    wait_http "http://127.0.0.1:$EMU_PORT/__emulator/health" >/dev/null 2>&1 || sleep 1
    HOME="$(mktemp -d "$WORK/home.XXXX")" XDG_CACHE_HOME="" XDG_DATA_HOME="" \
        POLAR_ORGANIZATION_ID=2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10 POLAR_API_URL="http://127.0.0.1:$EMU_PORT" \
        LICENSE_KEY=DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A "$1" | tee "$1.out" &&
        node "$ROOT/scripts/release/block.mjs" "$ROOT/README.md" expect c <"$1.out"
}
c_pkgconfig() {
    local kind="$1" pc=polar_license
    [[ "$kind" == static ]] && pc=polar_license-static
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Werror bindings/c/examples/launch.c \
        $(PKG_CONFIG_PATH="$C_PREFIX/lib/pkgconfig" pkg-config --cflags --libs "$pc") -o "$C_DIR/launch-$kind" &&
        run_launch "$C_DIR/launch-$kind" || return 1
    if [[ "$kind" == shared ]]; then
        # The archive's library, found through the .pc's rpath.
        ldd "$C_DIR/launch-shared" | grep "libpolar_license.so.* => $C_PREFIX/lib/"
    fi
}
check "C: launch.c linked by pkg-config (shared) runs" c_pkgconfig shared
check "C: launch.c linked by pkg-config (static) runs" c_pkgconfig static
c_cmake() {
    mkdir -p "$C_DIR/cmake-app" && cp bindings/c/examples/launch.c "$C_DIR/cmake-app/" &&
        cat >"$C_DIR/cmake-app/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(launch C)
find_package(polar_license 0.1 CONFIG REQUIRED)
add_executable(launch launch.c)
target_link_libraries(launch PRIVATE polar_license::polar_license)
EOF
    cmake -S "$C_DIR/cmake-app" -B "$C_DIR/cmake-build" -DCMAKE_PREFIX_PATH="$C_PREFIX" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$C_DIR/cmake-build" && run_launch "$C_DIR/cmake-build/launch"
}
check "C: launch.c linked by CMake's find_package runs" c_cmake

# --- every platform (RELEASE_MATRIX=1) --------------------------------------------------------------
if [[ "$MATRIX" == 1 ]]; then
    tags() {
        local want t
        ls "$ART"/python/
        for want in 'manylinux2014_x86_64' 'manylinux2014_aarch64' 'musllinux_1_2_x86_64' 'macosx_.*_x86_64|macosx_.*_universal2' 'macosx_.*_arm64|macosx_.*_universal2' 'win_amd64'; do
            # (A compound tag names each: manylinux2014_x86_64.manylinux_2_17_x86_64.)
            ls "$ART"/python/ | grep -E "^polar_license-$VERSION-cp39-abi3-(.*\.)?($want)(\..*)?\.whl$" >/dev/null ||
                { echo "no wheel for $want"; t=1; }
        done
        ls "$ART"/python/ | grep -qx "polar_license-$VERSION.tar.gz" || { echo "no sdist"; t=1; }
        [[ -z "${t:-}" ]]
    }
    check "python: 6 platform tags and the sdist" tags
    inspect_wheel() { # TRIPLE-REGEX FILE-REGEX
        local whl
        whl="$(ls "$ART"/python/*.whl | grep -E "$1" | head -n 1)"
        [[ -n "$whl" ]] || { echo "no wheel matching $1"; return 1; }
        rm -rf "$WORK/whl" && mkdir -p "$WORK/whl" && (cd "$WORK/whl" && python3 -m zipfile -e "$whl" .) &&
            grep -E "^Tag: cp39-abi3-" "$WORK"/whl/*.dist-info/WHEEL &&
            file "$WORK"/whl/polar_license/_native*.{so,pyd} 2>/dev/null | tee /dev/stderr | grep -E "$2"
    }
    check "python: the aarch64 wheel's module is an ARM aarch64 ELF" inspect_wheel manylinux2014_aarch64 'ARM aarch64'
    check "python: the musllinux wheel's module is an x86-64 ELF" inspect_wheel musllinux 'x86-64'
    win_wheel() {
        inspect_wheel win_amd64 'PE32\+ executable.*x86-64' &&
            x86_64-w64-mingw32-objdump -p "$WORK"/whl/polar_license/_native*.pyd | grep -i 'DLL Name: python3.dll'
    }
    check "python: the Windows wheel's module is a PE32+ DLL importing python3.dll (abi3)" win_wheel
    # mac_wheel ARCH: the wheel's module is a Mach-O of ARCH whose oldest macOS is the tag's, and
    # loads only libSystem, Security and CoreFoundation (scripts/release/inspect.sh).
    mac_wheel() {
        local whl tag minos
        inspect_wheel "macosx_.*_$1" "Mach-O.*$1" || return 1
        whl="$(ls "$ART"/python/*.whl | grep -E "macosx_.*_$1" | head -n 1)"
        tag="$(sed -E 's/.*-macosx_([0-9]+)_([0-9]+)_.*/\1.\2/' <<<"$whl")"
        bash scripts/release/inspect.sh macho "$WORK/whl/polar_license/_native.abi3.so" "$1" "$tag"
    }
    check "python: the macOS x86_64 wheel: Mach-O, the tag's oldest macOS, Apple's libraries only" mac_wheel x86_64
    check "python: the macOS arm64 wheel: Mach-O, the tag's oldest macOS, Apple's libraries only" mac_wheel arm64
    manylinux() { # the gnu wheels' modules, the gnu CLIs and C libraries: glibc 2.17 (manylinux2014)
        local t f
        for t in x86_64 aarch64; do
            inspect_wheel "manylinux2014_$t" . >/dev/null &&
                bash scripts/release/inspect.sh glibc "$WORK/whl/polar_license/_native.abi3.so" 2.17 || return 1
            rm -rf "$WORK/ml-$t" && mkdir -p "$WORK/ml-$t" &&
                tar -xzf "$ART/cli/polar-license-cli-$VERSION-$t-unknown-linux-gnu.tar.gz" -C "$WORK/ml-$t" &&
                tar -xzf "$ART/c/polar-license-c-$VERSION-$t-unknown-linux-gnu.tar.gz" -C "$WORK/ml-$t" || return 1
            for f in "$WORK/ml-$t"/*/bin/polar-license "$WORK/ml-$t"/*/lib/libpolar_license.so.*.*.*; do
                bash scripts/release/inspect.sh glibc "$f" 2.17 || return 1
            done
        done
    }
    check "manylinux2014: the gnu wheels, CLIs and C libraries need glibc 2.17 at most" manylinux
    sdist() {
        local dir="$WORK/py-sdist"
        python3 -m venv "$dir" &&
            "$dir/bin/pip" install -q --disable-pip-version-check --no-cache-dir --no-binary polar-license \
                --index-url "$PY_URL" --extra-index-url "$(python3 -m pip config get global.index-url 2>/dev/null || echo https://pypi.org/simple)" \
                polar-license &&
            "$dir/bin/python" -c 'import polar_license; print(polar_license.__name__, "from the sdist")'
    }
    check "python: pip install --no-binary builds the sdist" sdist
    cli_of() { # TRIPLE: the archive's binary, unpacked
        rm -rf "$WORK/cli-$1" && mkdir -p "$WORK/cli-$1" &&
            tar -xzf "$ART/cli/polar-license-cli-$VERSION-$1.tar.gz" -C "$WORK/cli-$1" &&
            ls "$WORK/cli-$1/polar-license-cli-$VERSION-$1/bin/"*
    }
    check "cli: the musl build runs here" bash -c "$(declare -f cli_of); ART='$ART' WORK='$WORK' VERSION='$VERSION'
        bin=\$(cli_of x86_64-unknown-linux-musl) && file \$bin | grep -E 'static(-pie linked|ally linked)' && \$bin --version"
    check "cli: the aarch64 build is an ARM aarch64 ELF" bash -c "$(declare -f cli_of); ART='$ART' WORK='$WORK' VERSION='$VERSION'
        bin=\$(cli_of aarch64-unknown-linux-gnu) && file \$bin | grep 'ARM aarch64'"
    # Wine as the windows stage sets it up (scripts/test-windows.sh): a prefix of this run's, and
    # the stand-in for bcryptprimitives.dll (Rust's std imports ProcessPrng, which wine 8
    # lacks) on wine's PATH: never shipped, and nothing of the archives is changed.
    mkdir -p "$WORK/wine-shim"
    export WINEPREFIX="$WORK/wineprefix" WINEARCH=win64 WINEDEBUG=-all
    export WINEDLLOVERRIDES="bcryptprimitives=n,b;mscoree,mshtml="
    x86_64-w64-mingw32-gcc -shared -O2 -o "$WORK/wine-shim/bcryptprimitives.dll" \
        scripts/windows/process_prng.c -ladvapi32 >"$LOGS/wine-shim.log" 2>&1 &&
        wineboot --init >>"$LOGS/wine-shim.log" 2>&1
    WINEPATH="$(winepath -w "$WORK/wine-shim" 2>/dev/null)"
    export WINEPATH
    check "cli: the Windows build runs under wine" bash -c "$(declare -f cli_of); ART='$ART' WORK='$WORK' VERSION='$VERSION'
        bin=\$(cli_of x86_64-pc-windows-gnu) && WINEDEBUG=-all wine \$bin --version 2>&1 | tr -d '\r' | grep -x 'polar-license $VERSION'"
    win_c() {
        local d="$WORK/c-win"
        mkdir -p "$d" && tar -xzf "$ART/c/polar-license-c-$VERSION-x86_64-pc-windows-gnu.tar.gz" -C "$d" || return 1
        local p="$d/polar-license-c-$VERSION-x86_64-pc-windows-gnu"
        local libs
        libs="$(PKG_CONFIG_PATH="$p/lib/pkgconfig" pkg-config --libs --static polar_license-static)" || return 1
        # shellcheck disable=SC2086
        x86_64-w64-mingw32-gcc -std=c11 -I"$p/include" bindings/c/examples/launch.c $libs -o "$d/launch.exe" -static ||
            return 1
        # Without its settings the quick start says which and exits 2 (so the output is read
        # whole, not through a pipe whose status is that exit).
        local out
        out="$(WINEDEBUG=-all wine "$d/launch.exe" 2>&1 | tr -d '\r')"
        grep 'set POLAR_ORGANIZATION_ID' <<<"$out" || { echo "$out"; return 1; }
        ls "$p/lib/" | grep -E 'polar_license_c\.dll'
    }
    check "c: the Windows archive links launch.c by pkg-config (MinGW) and it runs under wine" win_c
    mac_c() {
        local t
        for t in x86_64-apple-darwin aarch64-apple-darwin; do
            local d="$WORK/c-$t"
            mkdir -p "$d" && tar -xzf "$ART/c/polar-license-c-$VERSION-$t.tar.gz" -C "$d" || return 1
            local a="$d/polar-license-c-$VERSION-$t/lib/libpolar_license.a"
            (cd "$d" && ar x "$a" "$(ar t "$a" | grep -m1 '\.o$')" && file ./*.o) | tee /dev/stderr |
                grep -E "Mach-O 64-bit.*(${t%%-*}|$( [[ $t == aarch64* ]] && echo arm64 || echo x86_64))" || return 1
            grep -q 'framework Security' "$d/polar-license-c-$VERSION-$t/lib/pkgconfig/polar_license-static.pc" || return 1
        done
    }
    check "c: the macOS archives hold Mach-O static libraries (x86_64, arm64) and name Apple's frameworks" mac_c
    mac_files() { # the CLI and the C shared library: Mach-O, oldest macOS, install name
        local t arch minos d
        for t in x86_64-apple-darwin aarch64-apple-darwin; do
            arch=x86_64 minos=10.12
            [[ $t == aarch64* ]] && arch=arm64 minos=11.0
            d="$WORK/mac-$t"
            rm -rf "$d" && mkdir -p "$d" &&
                tar -xzf "$ART/cli/polar-license-cli-$VERSION-$t.tar.gz" -C "$d" &&
                tar -xzf "$ART/c/polar-license-c-$VERSION-$t.tar.gz" -C "$d" &&
                bash scripts/release/inspect.sh macho "$d/polar-license-cli-$VERSION-$t/bin/polar-license" "$arch" "$minos" &&
                bash scripts/release/inspect.sh macho "$d/polar-license-c-$VERSION-$t/lib/libpolar_license.$VERSION.dylib" "$arch" "$minos" &&
                llvm-objdump --macho --dylib-id "$d/polar-license-c-$VERSION-$t/lib/libpolar_license.$VERSION.dylib" |
                grep -x "@rpath/libpolar_license.${VERSION%.*}.dylib" || return 1
        done
    }
    check "macOS: the CLI and the C shared library (x86_64, arm64): Mach-O, oldest macOS, Apple's libraries only, @rpath install name" mac_files
    check "c: the aarch64 and musl archives' shared libraries are ELF of their architecture" bash -c "
        set -e; for t in aarch64-unknown-linux-gnu x86_64-unknown-linux-musl; do
            d='$WORK'/c-\$t; mkdir -p \$d; tar -xzf '$ART'/c/polar-license-c-$VERSION-\$t.tar.gz -C \$d
            file -L \$d/*/lib/libpolar_license.a \$d/*/lib/libpolar_license.so* 2>/dev/null | head -n 3
        done
        file -L '$WORK'/c-aarch64-unknown-linux-gnu/*/lib/libpolar_license.so | grep 'ARM aarch64'"
fi

echo
echo "registry: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
}
