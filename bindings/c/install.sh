#!/usr/bin/env bash
# Builds the polar-license C library and installs it into a prefix, the way a package would:
#
#   bash bindings/c/install.sh --prefix /usr/local        (or any directory you own)
#
#   <prefix>/include/polar_license.h
#   <prefix>/lib/libpolar_license.a
#   <prefix>/lib/libpolar_license.so.X.Y.Z, with libpolar_license.so.<sover> and
#     libpolar_license.so linking to it (macOS: libpolar_license.X.Y.Z.dylib, .<sover>.dylib, .dylib)
#   <prefix>/lib/pkgconfig/polar_license.pc         shared: cc app.c $(pkg-config --cflags --libs polar_license)
#   <prefix>/lib/pkgconfig/polar_license-static.pc  static: cc app.c $(pkg-config --cflags --libs polar_license-static)
#   <prefix>/lib/cmake/polar_license/polar_licenseConfig.cmake   find_package(polar_license CONFIG)
#   <prefix>/lib/cmake/polar_license/polar_licenseConfigVersion.cmake
#
# The shared library's SONAME (set by bindings/c/build.rs) is libpolar_license.so.<sover>, the
# name a program records and looks for at run time; <sover> is cargo-c's: 0.Y for a 0.Y.Z
# release (0.0.Z for 0.0), X from 1.0 on. The .pc files are relocatable (their prefix is found
# from where they are), and the shared one adds an rpath to the library directory, so a
# program linked against it starts without LD_LIBRARY_PATH. Options: --prefix DIR (required),
# --profile NAME (default c-release, the size-optimized build the tests use), --target TRIPLE
# (cross builds; default the host; a Linux gnu triple may carry Zig's glibc suffix, such as
# x86_64-unknown-linux-gnu.2.17, with CARGO_CMD=cargo-zigbuild), --static-only (the static
# library alone: macOS from another OS, where the shared one needs Apple's frameworks to link).
# CARGO_CMD (default cargo) is the cargo that builds, such as cargo-zigbuild. The system
# libraries a Rust static library needs are the ones `cargo rustc -- --print native-static-libs` prints for the target; they go into the
# static .pc and the CMake config.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREFIX=""
PROFILE="c-release"
TARGET=""
STATIC_ONLY=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
        --profile) PROFILE="${2:?--profile needs a name}"; shift 2 ;;
        --target) TARGET="${2:?--target needs a triple}"; shift 2 ;;
        --static-only) STATIC_ONLY=1; shift ;;
        -h|--help) sed -n '2,25p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -n "$PREFIX" ]] || { echo "usage: $0 --prefix DIR [--profile NAME] [--target TRIPLE]" >&2; exit 2; }
mkdir -p "$PREFIX"
PREFIX="$(cd "$PREFIX" && pwd)"

cd "$ROOT"
target_args=()
[[ -n "$TARGET" ]] && target_args=(--target "$TARGET")
target_dir="$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
target_dir="${target_dir:-$ROOT/target}"
# (Zig's glibc suffix names no directory: cargo builds into the plain triple's.)
# (The dev profile builds into debug/.)
profile_dir="$PROFILE"
[[ "$PROFILE" == dev ]] && profile_dir=debug
libdir="$target_dir/${TARGET:+${TARGET%.2.*}/}$profile_dir"
crate_types=()
[[ $STATIC_ONLY == 1 ]] && crate_types=(--crate-type staticlib)

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The crate (bindings/c, lib name polar_license_c) declares staticlib and cdylib: one build.
${CARGO_CMD:-cargo} rustc -p polar-license-c --lib --profile "$PROFILE" "${target_args[@]}" "${crate_types[@]}" \
    -- --print native-static-libs 2>&1 | tee "$log" >&2
native="$(sed -n 's/.*native-static-libs: //p' "$log" | tail -n 1)"
# A Windows GNU build names the windows-targets crate's import library, which is on no C
# project's path; MinGW's import libraries of the same DLLs (the rest of the list) suffice.
native="$(tr ' ' '\n' <<<"$native" | grep -v '^-lwindows\.' | tr '\n' ' ' | sed 's/ *$//')"

version="$(sed -n 's/^#define POLAR_LICENSE_VERSION "\(.*\)"/\1/p' bindings/c/include/polar_license.h)"
IFS=. read -r major minor patch <<<"$version"
# cargo-c's version suffix, the one bindings/c/build.rs puts in the SONAME.
if [[ "$major" == 0 && "$minor" == 0 ]]; then
    sover="0.0.$patch"
elif [[ "$major" == 0 ]]; then
    sover="0.$minor"
else
    sover="$major"
fi
lib="$PREFIX/lib"
mkdir -p "$PREFIX/include" "$lib/pkgconfig" "$lib/cmake/polar_license"
cp bindings/c/include/polar_license.h "$PREFIX/include/"
# put SOURCE DEST: replaces DEST (never writes into a file a running program has mapped).
put() { rm -f "$2" && cp "$1" "$2"; }
# Installed under the C name, polar_license: `-lpolar_license`, whatever the crate is called.
put "$libdir/libpolar_license_c.a" "$lib/libpolar_license.a"
shared=""      # the shared library's file (under lib/), for the CMake config and the summary
soname=""      # the name programs record
implib=""      # Windows: the import library
links=""       # the symbolic links to it, for the summary
if [[ -f "$libdir/libpolar_license_c.so" ]]; then
    shared="libpolar_license.so.$version"
    soname="libpolar_license.so.$sover"
    if command -v readelf >/dev/null 2>&1; then
        built="$(readelf -d "$libdir/libpolar_license_c.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
        if [[ -n "$built" && "$built" != "$soname" ]]; then
            echo "libpolar_license_c.so has the SONAME $built, expected $soname (bindings/c/build.rs)" >&2
            exit 1
        fi
    fi
    put "$libdir/libpolar_license_c.so" "$lib/$shared"
    # What a program records (the SONAME), and what the linker's -lpolar_license finds.
    ln -sfn "$shared" "$lib/$soname"
    ln -sfn "$soname" "$lib/libpolar_license.so"
    links="libpolar_license.so -> $soname -> $shared"
fi
if [[ -f "$libdir/libpolar_license_c.dylib" ]]; then
    shared="libpolar_license.$version.dylib"
    soname="@rpath/libpolar_license.$sover.dylib"
    put "$libdir/libpolar_license_c.dylib" "$lib/$shared"
    # build.rs sets this install name; set again here, so it is the installed name whatever
    # built the file (off a Mac, with no install_name_tool, build.rs's is checked instead).
    if command -v install_name_tool >/dev/null 2>&1; then
        install_name_tool -id "$soname" "$lib/$shared"
    elif command -v llvm-objdump >/dev/null 2>&1; then
        built="$(llvm-objdump --macho --dylib-id "$lib/$shared" | sed -n '2p' | tr -d '[:space:]')"
        if [[ "$built" != "$soname" ]]; then
            echo "$shared has the install name $built, expected $soname (bindings/c/build.rs)" >&2
            exit 1
        fi
    fi
    ln -sfn "$shared" "$lib/libpolar_license.$sover.dylib"
    ln -sfn "libpolar_license.$sover.dylib" "$lib/libpolar_license.dylib"
    links="libpolar_license.dylib -> libpolar_license.$sover.dylib -> $shared"
fi
if [[ -f "$libdir/polar_license_c.dll" ]]; then
    # A DLL keeps its built name (its import library names it); the import library is
    # installed as libpolar_license.dll.a, so `-lpolar_license` finds it.
    shared="polar_license_c.dll"
    put "$libdir/polar_license_c.dll" "$lib/$shared"
    if [[ -f "$libdir/libpolar_license_c.dll.a" ]]; then
        implib="libpolar_license.dll.a"
        put "$libdir/libpolar_license_c.dll.a" "$lib/$implib"
    fi
fi
fill() { # TEMPLATE OUT
    sed -e "s|@VERSION@|$version|g" -e "s|@NATIVE_STATIC_LIBS@|$native|g" \
        -e "s|@STATIC_LIBRARY@|libpolar_license.a|g" -e "s|@SHARED_LIBRARY@|$shared|g" \
        -e "s|@SHARED_SONAME@|$soname|g" -e "s|@SHARED_IMPLIB@|$implib|g" "$1" >"$2"
}
fill bindings/c/polar_license.pc.in "$lib/pkgconfig/polar_license.pc"
fill bindings/c/polar_license-static.pc.in "$lib/pkgconfig/polar_license-static.pc"
fill bindings/c/cmake/polar_licenseConfig.cmake.in "$lib/cmake/polar_license/polar_licenseConfig.cmake"
fill bindings/c/cmake/polar_licenseConfigVersion.cmake.in \
    "$lib/cmake/polar_license/polar_licenseConfigVersion.cmake"
echo "installed polar_license $version ($PROFILE${TARGET:+, $TARGET}) into $PREFIX:"
echo "  include/polar_license.h, lib/libpolar_license.a${shared:+, lib/$shared}${implib:+, lib/$implib}"
if [[ -n "$links" ]]; then
    echo "  lib/$links; the name programs record (SONAME): $soname"
fi
echo "  lib/pkgconfig/polar_license.pc (shared), polar_license-static.pc (static), lib/cmake/polar_license/"
echo "  system libraries for static links: $native"
