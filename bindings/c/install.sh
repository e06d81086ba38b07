#!/usr/bin/env bash
# Builds the polar-license C library and installs it into a prefix, the way a package would:
#
#   bash bindings/c/install.sh --prefix /usr/local        (or any directory you own)
#
#   <prefix>/include/polar_license.h
#   <prefix>/lib/libpolar_license.a and libpolar_license.so (.dylib on macOS)
#   <prefix>/lib/pkgconfig/polar_license.pc         shared: cc app.c $(pkg-config --cflags --libs polar_license)
#   <prefix>/lib/pkgconfig/polar_license-static.pc  static: cc app.c $(pkg-config --cflags --libs polar_license-static)
#   <prefix>/lib/cmake/polar_license/polar_licenseConfig.cmake   find_package(polar_license CONFIG)
#
# The .pc files are relocatable (their prefix is found from where they are), and the shared
# one adds an rpath to the library directory, so a program linked against it starts without
# LD_LIBRARY_PATH. Options: --prefix DIR (required), --profile NAME (default c-release, the
# size-optimized build the tests use), --target TRIPLE (cross builds; default the host).
# The system libraries a Rust static library needs are the ones `cargo rustc -- --print
# native-static-libs` prints for the target; they go into the static .pc and the CMake config.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREFIX=""
PROFILE="c-release"
TARGET=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
        --profile) PROFILE="${2:?--profile needs a name}"; shift 2 ;;
        --target) TARGET="${2:?--target needs a triple}"; shift 2 ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 0 ;;
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
libdir="$target_dir/${TARGET:+$TARGET/}$PROFILE"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The crate (bindings/c, lib name polar_license_c) declares staticlib and cdylib: one build.
cargo rustc -p polar-license-c --lib --profile "$PROFILE" "${target_args[@]}" \
    -- --print native-static-libs 2>&1 | tee "$log" >&2
native="$(sed -n 's/.*native-static-libs: //p' "$log" | tail -n 1)"
# A Windows GNU build names the windows-targets crate's import library, which is on no C
# project's path; MinGW's import libraries of the same DLLs (the rest of the list) suffice.
native="$(tr ' ' '\n' <<<"$native" | grep -v '^-lwindows\.' | tr '\n' ' ' | sed 's/ *$//')"

version="$(sed -n 's/^#define POLAR_LICENSE_VERSION "\(.*\)"/\1/p' bindings/c/include/polar_license.h)"
mkdir -p "$PREFIX/include" "$PREFIX/lib/pkgconfig" "$PREFIX/lib/cmake/polar_license"
cp bindings/c/include/polar_license.h "$PREFIX/include/"
# Installed under the C name, polar_license: `-lpolar_license`, whatever the crate is called.
cp "$libdir/libpolar_license_c.a" "$PREFIX/lib/libpolar_license.a"
shared=""
if [[ -f "$libdir/libpolar_license_c.so" ]]; then
    # No SONAME is recorded in it, so a program links the name it was given: this one.
    cp "$libdir/libpolar_license_c.so" "$PREFIX/lib/libpolar_license.so"
    shared=" libpolar_license.so"
fi
if [[ -f "$libdir/libpolar_license_c.dylib" ]]; then
    cp "$libdir/libpolar_license_c.dylib" "$PREFIX/lib/libpolar_license.dylib"
    # Its install name must follow the new file name, or programs look for the old one.
    install_name_tool -id @rpath/libpolar_license.dylib "$PREFIX/lib/libpolar_license.dylib"
    shared=" libpolar_license.dylib"
fi
if [[ -f "$libdir/polar_license_c.dll" ]]; then
    # A DLL keeps its built name (its import library names it); the import library is
    # installed as libpolar_license.dll.a, so `-lpolar_license` finds it.
    cp "$libdir/polar_license_c.dll" "$PREFIX/lib/"
    [[ -f "$libdir/libpolar_license_c.dll.a" ]] &&
        cp "$libdir/libpolar_license_c.dll.a" "$PREFIX/lib/libpolar_license.dll.a"
    shared=" polar_license_c.dll, libpolar_license.dll.a"
fi
fill() { # TEMPLATE OUT
    sed -e "s|@VERSION@|$version|" -e "s|@NATIVE_STATIC_LIBS@|$native|" "$1" >"$2"
}
fill bindings/c/polar_license.pc.in "$PREFIX/lib/pkgconfig/polar_license.pc"
fill bindings/c/polar_license-static.pc.in "$PREFIX/lib/pkgconfig/polar_license-static.pc"
fill bindings/c/cmake/polar_licenseConfig.cmake.in \
    "$PREFIX/lib/cmake/polar_license/polar_licenseConfig.cmake"
echo "installed polar_license $version ($PROFILE${TARGET:+, $TARGET}) into $PREFIX:"
echo "  include/polar_license.h, lib/libpolar_license.a${shared:+,}$shared"
echo "  lib/pkgconfig/polar_license.pc (shared), polar_license-static.pc (static), lib/cmake/polar_license/"
echo "  system libraries for static links: $native"
