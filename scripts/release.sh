#!/usr/bin/env bash
# The release command (issue #79): everything a release ships, built into target/release-artifacts/
# (docs/releasing.md says what a maintainer does with it):
#
#   bash scripts/release.sh                 every platform this machine can build (below)
#   bash scripts/release.sh --host-only     Linux x86_64 only (what CI builds and installs)
#   bash scripts/release.sh --host-only --reuse
#                                           the same, packed from what the test command's stages
#                                           already built (CI's registry stage; not the bytes a
#                                           release ships: see "--reuse" below)
#   options: --out DIR, --targets T1,T2 (a subset of the platforms), --parts P1,P2 (a subset of
#   crates,npm,python,c,cli: the release workflow's macOS runner builds python,c,cli for the
#   Apple targets), --no-verify (skip cargo's build of each packaged crate)
#
# What lands in the output directory:
#   crates/*.crate, crates/PUBLISH-ORDER   every published crate (`cargo package`), in the order
#                                          crates.io must receive them (dependencies first)
#   npm/polar-license-V.tgz, npm/polar-license-tauri-V.tgz
#                                          the npm library (scripts/build-npm.sh) and the Tauri
#                                          plugin's guest package (`npm pack`)
#   python/*.whl, python/*.tar.gz          the abi3 wheels (maturin; Zig for the Linux and macOS
#                                          tags, MinGW for Windows) and the sdist
#   c/polar-license-c-V-TRIPLE.tar.gz      static and shared library, header, pkg-config and CMake
#                                          files (bindings/c/install.sh into the archive's root)
#   cli/polar-license-cli-V-TRIPLE.tar.gz  the command line (bin/polar-license), and install.sh
#                                          (scripts/release/install.sh), which installs it into a
#                                          prefix after checking it against SHA256SUMS
#   sbom/ARTIFACT.cdx.json                 a CycloneDX 1.5 SBOM per artifact (scripts/release/sbom.mjs,
#                                          from `cargo tree` and Cargo.lock: no tool to install)
#   RELEASE-NOTES.md                       CHANGELOG.md's entry for V (required) and every size
#   SHA256SUMS                             of every file above
#
# Platforms (TRIPLE): x86_64-unknown-linux-gnu and aarch64-unknown-linux-gnu (glibc 2.17 through
# Zig: manylinux2014), x86_64-unknown-linux-musl (musllinux_1_2), x86_64-pc-windows-gnu (MinGW-w64),
# x86_64-apple-darwin and aarch64-apple-darwin (Zig). Apple's SDK is not redistributable: off a
# Mac, the Security and CoreFoundation frameworks are linked through text stubs of their
# exports (scripts/release/macos-frameworks.mjs), so the macOS wheels, CLI and shared library
# are built here too and record the real frameworks' install names; they cannot run here
# (scripts/test-registry.sh inspects them). The release workflow's macOS runner builds the
# same with Apple's own SDK (.github/workflows/release.yml).
#
# Reproducible: SOURCE_DATE_EPOCH (default: the last commit's time) dates every archive entry and
# the SBOMs; tar entries sorted, owned by 0:0, gzip without a name or time; rustc's paths remapped
# (--remap-path-prefix: the checkout and CARGO_HOME); cargo's and npm's own packers fix their
# mtimes; the wheels built beside the library as packaged, the macOS files stripped by the
# linker, the Windows library's import names renamed and its CLI and DLL stripped (win_same).
# Run twice: docs/releasing.md says what came out the same.
#
# --reuse (CI): takes target/npm/*.tgz (the wasm stage), target/python/wheels and sdist (the
# python stage), target/release/polar-license (docs-build) and target/c-release (the C stage)
# as they are, where present, and builds what is missing: those builds have no path remapping and
# the test command's profile overrides, so only the packing is checked there.
#
# The build runs at the niceness RELEASE_NICE (default 10) with CARGO_BUILD_JOBS as set; the
# release builds go to RELEASE_TARGET_DIR (default target/release-build: its flags differ from
# the stages', so no stage's build is invalidated). The last line is `release: N artifacts in DIR`.
# (One block, read whole before it runs: editing this file during a release changes nothing.)
{
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

OUT="target/release-artifacts"
HOST_ONLY=0
REUSE=0
VERIFY=1
TARGETS=""
PARTS="crates,npm,python,c,cli"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --host-only) HOST_ONLY=1; shift ;;
        --reuse) REUSE=1; shift ;;
        --no-verify) VERIFY=0; shift ;;
        --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
        --targets) TARGETS="${2:?--targets needs triples}"; shift 2 ;;
        --parts) PARTS="${2:?--parts needs a list}"; shift 2 ;;
        -h | --help) sed -n '2,/^# (One block/p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "release: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

HOST_TRIPLE="x86_64-unknown-linux-gnu"
ALL_TARGETS="x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl x86_64-pc-windows-gnu x86_64-apple-darwin aarch64-apple-darwin"
if [[ -n "$TARGETS" ]]; then
    TARGETS="${TARGETS//,/ }"
elif [[ $HOST_ONLY == 1 ]]; then
    TARGETS="$HOST_TRIPLE"
else
    TARGETS="$ALL_TARGETS"
fi
[[ $REUSE == 0 || "$TARGETS" == "$HOST_TRIPLE" ]] || {
    echo "release: --reuse packs the host's builds only (add --host-only)" >&2
    exit 2
}
# Each platform's Rust standard library (rustup's): a fresh machine has the host's only, and a
# build for a platform without it fails deep inside maturin with "can't find crate for `core`".
if [[ ",$PARTS," =~ ,(python|c|cli), ]] && command -v rustup >/dev/null 2>&1; then
    installed="$(rustup target list --installed)"
    missing=()
    for t in $TARGETS; do grep -qx "$t" <<<"$installed" || missing+=("$t"); done
    if [[ ${#missing[@]} -gt 0 ]]; then
        echo "==> release: rustup target add ${missing[*]}"
        rustup target add "${missing[@]}"
    fi
fi

VERSION="$(cargo metadata --format-version 1 --no-deps --locked |
    node -e 'const m = JSON.parse(require("fs").readFileSync(0, "utf8")); process.stdout.write(m.packages.find((p) => p.name === "polar-license").version)')"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
NICE="${RELEASE_NICE:-10}"
BUILD_DIR="$(mkdir -p "${RELEASE_TARGET_DIR:-target/release-build}" && cd "${RELEASE_TARGET_DIR:-target/release-build}" && pwd)"
CARGO_HOME_DIR="${CARGO_HOME:-$HOME/.cargo}"
# rustc's paths in what it writes (panic locations, debug info left after stripping): the same
# whatever the checkout's or the cargo home's directory. Only for --target builds, so the build
# scripts and proc macros (host code, shipped nowhere) are shared with flagless builds.
# The build directory last (rustc takes the last prefix that matches): the build scripts' OUT_DIR
# is inside it, and it may be inside the checkout.
REMAP="--remap-path-prefix=$ROOT=/polar-license --remap-path-prefix=$CARGO_HOME_DIR=/cargo --remap-path-prefix=$BUILD_DIR=/target"
export TZ=UTC LC_ALL=C

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
rm -rf "${OUT:?}"/*
mkdir -p "$OUT"/{crates,npm,python,c,cli,sbom}
LOGS="$ROOT/target/release-logs"
mkdir -p "$LOGS"
WORK="$ROOT/target/release-work"
rm -rf "$WORK" && mkdir -p "$WORK"

# step TEXT: a step's heading, and the seconds the one before it took.
STEP_START=""
step() {
    [[ -z "$STEP_START" ]] || echo "    ($(elapsed "$STEP_START") s)"
    STEP_START="$(now)"
    echo "==> release: $*"
}
part() { [[ ",$PARTS," == *",$1,"* ]]; }
build() { nice -n "$NICE" "$@"; }
# zig_triple TRIPLE: the Linux gnu triples with the oldest glibc manylinux2014 allows.
zig_triple() { case "$1" in *-linux-gnu) echo "$1.2.17" ;; *) echo "$1" ;; esac; }
have_zig() { command -v cargo-zigbuild >/dev/null 2>&1; }
# cargo_for TRIPLE: the cargo that cross-builds for TRIPLE (Zig's for Linux and macOS; the host
# build too, for its glibc 2.17; MinGW's gcc for Windows through plain cargo).
cargo_for() {
    case "$1" in
        *-windows-gnu) echo cargo ;;
        *) if have_zig; then echo cargo-zigbuild; else echo cargo; fi ;;
    esac
}
target_arg() { if [[ "$(cargo_for "$1")" == cargo-zigbuild ]]; then zig_triple "$1"; else echo "$1"; fi; }
# Where the test command's stages build (--reuse): cargo's target directory.
STAGES_TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
# The environment of every release build: `build env "${REL[@]}" CMD…`.
REL=(CARGO_TARGET_DIR="$BUILD_DIR" RUSTFLAGS="$REMAP" CARGO_INCREMENTAL=0)
# rel_for TRIPLE: REL for TRIPLE, in RELT. An Apple target built off a Mac links the frameworks'
# stubs (written once, into the build directory: no path of it reaches an output).
APPLE_FW="$BUILD_DIR/apple-frameworks"
# Every Apple build names its oldest macOS (Rust's own defaults, the ones maturin's wheel tags
# say: 10.12 on Intel, 11.0 on Apple silicon); without it Zig's linker writes its own newest as
# the minimum (15.0), and the files would refuse to load on every older Mac.
rel_for() {
    RELT=("${REL[@]}")
    case "$1" in
        x86_64-apple-darwin) RELT+=(MACOSX_DEPLOYMENT_TARGET=10.12) ;;
        aarch64-apple-darwin) RELT+=(MACOSX_DEPLOYMENT_TARGET=11.0) ;;
        *) return 0 ;;
    esac
    [[ "$(uname -s)" != Darwin ]] || return 0
    [[ -f "$APPLE_FW/Security.framework/Security.tbd" ]] ||
        node scripts/release/macos-frameworks.mjs "$APPLE_FW" Cargo.toml bindings/python/Cargo.toml >/dev/null
    # -s: Zig's linker writes LC_UUID as a hash of what it wrote, the symbols' debug entries
    # with them, which name rustc's randomly named temporary directory; stripped later, they
    # left a UUID new at every link. Stripped by the linker, the UUID is the stripped file's.
    RELT+=(RUSTFLAGS="$REMAP -L framework=$APPLE_FW -C link-arg=-s")
}

# tar_gz DIR_PARENT NAME ARCHIVE: a reproducible .tar.gz of DIR_PARENT/NAME (GNU tar: macOS's
# is bsdtar, its runner installs gnu-tar as gtar).
TAR=tar
command -v gtar >/dev/null 2>&1 && TAR=gtar
tar_gz() {
    "$TAR" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -C "$1" -cf - "$2" | gzip -9n >"$3"
}

# win_same FILE…: on the Windows target, the files made the same at every build (nothing
# elsewhere). rustc names its raw-dylib import symbols after randomly named temporary
# directories: the static library's are renamed in order (scripts/release/win-names.py); the
# CLI's and the DLL's symbol tables, whose order follows those names, are stripped (MinGW's
# strip, its PE timestamp SOURCE_DATE_EPOCH's): a panic's backtrace on Windows then names no
# function.
win_same() {
    [[ "$t" == *-windows-* ]] || return 0
    local f
    for f in "$@"; do
        case "$f" in
            *.a) python3 scripts/release/win-names.py "$f" ;;
            *) x86_64-w64-mingw32-strip --strip-all "$f" ;;
        esac >>"$LOGS/win-same.log" 2>&1 || {
            tail -n 5 "$LOGS/win-same.log"
            exit 1
        }
    done
}

# --- 1. the crates, in publishing order --------------------------------------------------------
if part crates; then
step "crates (cargo package$([[ $VERIFY == 1 ]] && echo ", each built as packaged"))"
# The published crates are the workspace members without publish = false; crates.io must
# receive each after the ones it depends on (a topological order of the path dependencies).
node - >"$OUT/crates/PUBLISH-ORDER" <<'JS'
const { execFileSync } = require('node:child_process');
const m = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps', '--locked'], { encoding: 'utf8' }));
const members = new Set(m.workspace_members);
const published = m.packages.filter((p) => members.has(p.id) && !(Array.isArray(p.publish) && p.publish.length === 0));
const names = new Set(published.map((p) => p.name));
const done = [];
const visit = (p, seen = new Set()) => {
  if (done.includes(p.name) || seen.has(p.name)) return;
  seen.add(p.name);
  for (const d of p.dependencies) {
    if (d.kind === 'dev' || !names.has(d.name)) continue;
    visit(published.find((q) => q.name === d.name), seen);
  }
  done.push(p.name);
};
for (const p of [...published].sort((a, b) => a.name.localeCompare(b.name))) visit(p);
console.log(done.join('\n'));
JS
mapfile -t CRATES <"$OUT/crates/PUBLISH-ORDER"
# Each packaged crate is built on its own against the others as packaged (cargo's overlay of
# the crates not yet on crates.io), in the tests' target directory (the dev profile they share);
# the Tauri plugin only packed (its stage builds Tauri: scripts/test-tauri.sh). --no-verify only
# packs. An earlier run's unpacked copies and fingerprints would be reused as they were
# (scripts/package-check.sh says why): they go first.
PKG_TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
rm -rf "$PKG_TARGET/package"
if [[ $VERIFY == 1 ]]; then
    rm -rf "$CARGO_HOME_DIR"/registry/src/-*/polar-license-* "$PKG_TARGET"/debug/.fingerprint/polar-license-*
fi
all=()
verified=()
for c in "${CRATES[@]}"; do
    all+=(-p "$c")
    [[ "$c" == tauri-plugin-* ]] || verified+=(-p "$c")
done
# (The plugin packs only beside the crates it depends on: one call packs them all.)
if ! { [[ $VERIFY == 0 ]] || build env CARGO_TARGET_DIR="$PKG_TARGET" cargo package --locked \
    --allow-dirty "${verified[@]}"; } >"$LOGS/cargo-package.log" 2>&1 ||
    ! build env CARGO_TARGET_DIR="$PKG_TARGET" cargo package --locked --allow-dirty --no-verify \
        "${all[@]}" >>"$LOGS/cargo-package.log" 2>&1; then
    tail -n 30 "$LOGS/cargo-package.log"
    echo "release: cargo package failed (log: $LOGS/cargo-package.log)" >&2
    exit 1
fi
for c in "${CRATES[@]}"; do
    cp "$PKG_TARGET/package/$c-$VERSION.crate" "$OUT/crates/"
done
echo "    ${CRATES[*]}"
fi

# --- 2. Python -------------------------------------------------------------------------------
if part python; then
step "python (sdist and abi3 wheels)"
TOOLS="$ROOT/${PYTHON_TOOLS:-target/python-tools}"
[[ -x "$TOOLS/bin/maturin" ]] || bash scripts/setup-python.sh >"$LOGS/setup-python.log" 2>&1 || {
    tail -n 20 "$LOGS/setup-python.log"
    exit 1
}
MATURIN="$TOOLS/bin/maturin"
PYM="bindings/python/Cargo.toml"
if [[ $REUSE == 1 ]] && ls target/python/sdist/*.tar.gz target/python/wheels/*.whl >/dev/null 2>&1; then
    echo "    reusing target/python/sdist and target/python/wheels"
    cp target/python/sdist/*.tar.gz target/python/wheels/*.whl "$OUT/python/"
else
    build "$MATURIN" sdist -m "$PYM" -o "$OUT/python" >"$LOGS/sdist.log" 2>&1 || {
        tail -n 20 "$LOGS/sdist.log"
        exit 1
    }
    # The wheels build from a copy of the module beside the library's crates as packaged
    # (vendor/, patched in): each inside the copy's workspace, so cargo hashes them by their
    # path in it. From bindings/python, the library (`../..`) is outside the module's workspace
    # and cargo hashes it by its absolute path: the code was laid out differently per checkout
    # directory and no two checkouts made the same wheel (docs/releasing.md).
    PYSRC="$WORK/python-src"
    mkdir -p "$PYSRC/vendor"
    build env CARGO_TARGET_DIR="$WORK/python-package" cargo package --locked --allow-dirty --no-verify \
        -p polar-license-rules -p polar-license -p polar-license-emulator >"$LOGS/python-vendor.log" 2>&1 || {
        tail -n 20 "$LOGS/python-vendor.log"
        exit 1
    }
    for c in polar-license-rules polar-license polar-license-emulator; do
        tar -xzf "$WORK/python-package/package/$c-$VERSION.crate" -C "$PYSRC/vendor"
    done
    git ls-files -z bindings/python ':!bindings/python/tests' | while IFS= read -r -d '' f; do
        mkdir -p "$PYSRC/$(dirname "${f#bindings/python/}")"
        cp "$f" "$PYSRC/${f#bindings/python/}"
    done
    node - "$PYSRC/Cargo.toml" "$VERSION" <<'JS'
const fs = require('node:fs');
const [file, version] = process.argv.slice(2);
const vendored = { 'polar-license': '../..', 'polar-license-emulator': '../../crates/emulator', 'polar-license-rules': null };
let text = fs.readFileSync(file, 'utf8');
for (const [name, from] of Object.entries(vendored)) {
  if (from === null) continue;
  const was = `${name} = { path = "${from}" }`;
  if (!text.includes(was)) throw new Error(`bindings/python/Cargo.toml: no \`${was}\``);
  text = text.replace(was, `${name} = { path = "vendor/${name}-${version}" }`);
}
// (vendor/ excluded: a path dependency inside the workspace's directory would be a member, its
// dev-dependencies locked too.)
if (!text.includes('\n[workspace]\n')) throw new Error('bindings/python/Cargo.toml: no [workspace] table');
text = text.replace('\n[workspace]\n', '\n[workspace]\nexclude = ["vendor"]\n');
text += '\n[patch.crates-io]\n' + Object.keys(vendored).map((n) => `${n} = { path = "vendor/${n}-${version}" }\n`).join('');
fs.writeFileSync(file, text);
JS
    PYM="$PYSRC/Cargo.toml"
    for t in $TARGETS; do
        args=(--release --locked -m "$PYM" -o "$OUT/python" --target "$t")
        case "$t" in
            x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) args+=(--zig --compatibility manylinux2014) ;;
            x86_64-unknown-linux-musl) args+=(--zig --compatibility musllinux_1_2) ;;
            *-apple-darwin) [[ "$(uname -s)" == Darwin ]] || args+=(--zig) ;;
        esac
        echo "    wheel $t"
        rel_for "$t"
        # (A target directory of its own: the module is a workspace of its own, with its own lock.)
        build env "${RELT[@]}" CARGO_TARGET_DIR="$BUILD_DIR/python" PYO3_PYTHON="$TOOLS/bin/python" "$MATURIN" build "${args[@]}" \
            >"$LOGS/wheel-$t.log" 2>&1 || {
            tail -n 30 "$LOGS/wheel-$t.log"
            exit 1
        }
    done
fi

fi

# --- 3. the C library and the command line, per platform ---------------------------------------
for t in $TARGETS; do
    part c || part cli || break
    step "C library and CLI for $t"
    stage="$WORK/c/polar-license-c-$VERSION-$t"
    mkdir -p "$stage"
    rel_for "$t"
    if part c; then
    if [[ $REUSE == 1 && -f "$STAGES_TARGET/c-release/libpolar_license_c.a" ]]; then
        echo "    reusing $STAGES_TARGET/c-release"
        bash bindings/c/install.sh --prefix "$stage" >"$LOGS/c-$t.log" 2>&1 || {
            tail -n 30 "$LOGS/c-$t.log"
            exit 1
        }
    else
        build env "${RELT[@]}" CARGO_CMD="$(cargo_for "$t")" bash bindings/c/install.sh --prefix "$stage" \
            --target "$(target_arg "$t")" >"$LOGS/c-$t.log" 2>&1 || {
            tail -n 30 "$LOGS/c-$t.log"
            exit 1
        }
    fi
    cp LICENSE-MIT LICENSE-APACHE bindings/c/README.md "$stage/"
    win_same "$stage/lib/libpolar_license.a" "$stage/lib/polar_license_c.dll"
    tar_gz "$WORK/c" "polar-license-c-$VERSION-$t" "$OUT/c/polar-license-c-$VERSION-$t.tar.gz"
    fi
    part cli || continue

    exe=polar-license
    [[ "$t" == *-windows-* ]] && exe=polar-license.exe
    if [[ $REUSE == 1 && -x "$STAGES_TARGET/release/polar-license" ]]; then
        echo "    reusing $STAGES_TARGET/release/polar-license"
        bin="$STAGES_TARGET/release/polar-license"
    else
        build env "${RELT[@]}" "$(cargo_for "$t")" build --locked --release -p polar-license-cli \
            --target "$(target_arg "$t")" >"$LOGS/cli-$t.log" 2>&1 || {
            tail -n 30 "$LOGS/cli-$t.log"
            exit 1
        }
        bin="$BUILD_DIR/$t/release/$exe"
    fi
    stage="$WORK/cli/polar-license-cli-$VERSION-$t"
    mkdir -p "$stage/bin"
    cp "$bin" "$stage/bin/$exe"
    win_same "$stage/bin/$exe"
    cp LICENSE-MIT LICENSE-APACHE crates/cli/README.md "$stage/"
    tar_gz "$WORK/cli" "polar-license-cli-$VERSION-$t" "$OUT/cli/polar-license-cli-$VERSION-$t.tar.gz"
done
! part cli || cp scripts/release/install.sh "$OUT/cli/install.sh"

# --- 4. npm ---------------------------------------------------------------------------------
if part npm; then
step "npm (the library and the Tauri guest package)"
if [[ $REUSE == 1 && -f "target/npm/polar-license-$VERSION.tgz" ]]; then
    echo "    reusing target/npm/polar-license-$VERSION.tgz"
else
    # Its packing tools (wasm-opt, zopfli, esbuild, the pinned nightly, wasm-bindgen), set up
    # when missing, as the python part sets up maturin: a fresh clone has none of them.
    bash scripts/setup-pack.sh >"$LOGS/setup-pack.log" 2>&1 || {
        tail -n 20 "$LOGS/setup-pack.log"
        exit 1
    }
    build bash scripts/build-npm.sh >"$LOGS/build-npm.log" 2>&1 || {
        tail -n 30 "$LOGS/build-npm.log"
        exit 1
    }
fi
cp "target/npm/polar-license-$VERSION.tgz" "$OUT/npm/"
(npm pack --silent --pack-destination "$OUT/npm" ./crates/tauri/guest-js >/dev/null)
fi

find "$OUT" -mindepth 1 -maxdepth 1 -type d -empty -delete

# --- 5. SBOMs, notes, checksums --------------------------------------------------------------
step "SBOMs (CycloneDX), release notes, SHA256SUMS"
node scripts/release/sbom.mjs "$OUT" "$VERSION" >"$LOGS/sbom.log" 2>&1 || {
    cat "$LOGS/sbom.log"
    exit 1
}
node scripts/release/notes.mjs "$OUT" "$VERSION" CHANGELOG.md >"$OUT/RELEASE-NOTES.md" || exit 1
sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum "$@"; else shasum -a 256 "$@"; fi; }
(cd "$OUT" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | sort | while read -r f; do sha256 "$f"; done >SHA256SUMS)
echo "    ($(elapsed "$STEP_START") s)"
count="$(wc -l <"$OUT/SHA256SUMS")"
echo "release: $count artifacts in $OUT (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
exit 0
}
