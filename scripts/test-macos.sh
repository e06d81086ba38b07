#!/usr/bin/env bash
# macOS, compiled and linted here (issue #39): bash scripts/test-macos.sh (after
# scripts/setup-macos.sh). For aarch64-apple-darwin and x86_64-apple-darwin, with Zig as the C
# compiler (cargo-zigbuild), each a check that counts as one test:
#
#   clippy        the core, the command line, the C library and the relay (every feature),
#                 -D warnings: every crate a macOS user gets, the macOS-only lines included
#                 (the IOPlatformUUID read through /usr/sbin/ioreg, the OS trust store through
#                 rustls-platform-verifier and Security.framework)
#   tauri         the Tauri plugin, -D warnings (FULL=1 only: no line of it is macOS's own)
#   staticlib     the C library built for real as a static library (ring's C compiled by Zig),
#                 and the system libraries it needs as rustc prints them: the frameworks
#                 Security and CoreFoundation must be among them, and the static pkg-config
#                 file bindings/c/install.sh would write carries them, and so does the link
#                 line CMake generates from its CMake package (each framework one item)
#
# What cannot happen here: the final link (Apple's SDK, its frameworks, is not
# redistributable), a run, notarization, Gatekeeper (docs/macos.md). Measured on 2 cores:
# about 6 minutes for both targets from a warm registry (scripts/test.sh prints the stage's
# time). Last line: `macos: N passed, N failed`.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

passed=0
failed=0
check() {
    local name="$1"
    shift
    echo "==> macos $name: $*"
    if "$@"; then
        passed=$((passed + 1))
        echo "==> macos $name: ok"
    else
        failed=$((failed + 1))
        echo "==> macos $name: FAILED"
    fi
}

staticlib() {
    local target="$1" log
    log="$(mktemp)"
    cargo-zigbuild rustc --target "$target" -p polar-license-c --lib --crate-type staticlib \
        -- --print native-static-libs 2>&1 | tee "$log" || {
        rm -f "$log"
        return 1
    }
    local native
    native="$(sed -n 's/.*native-static-libs: //p' "$log" | tail -n 1)"
    rm -f "$log"
    local dir
    dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
    local archive="${dir:-target}/$target/debug/libpolar_license_c.a"
    [[ -s "$archive" ]] || {
        echo "no static library at $archive" >&2
        return 1
    }
    echo "$archive: $(du -h "$archive" | cut -f 1); native-static-libs: $native"
    for framework in "-framework Security" "-framework CoreFoundation"; do
        [[ " $native " == *" $framework "* ]] || {
            echo "native-static-libs lacks $framework" >&2
            return 1
        }
    done
    # The static .pc exactly as install.sh fills it in.
    local libs
    libs="$(sed -e "s|@VERSION@|0|" -e "s|@NATIVE_STATIC_LIBS@|$native|" \
        bindings/c/polar_license-static.pc.in | sed -n 's/^Libs: //p')"
    echo "polar_license-static.pc Libs: $libs"
    [[ "$libs" == *"-framework Security -framework CoreFoundation"* ]] || return 1
    cmake_link "$native"
}

# The CMake package install.sh writes, with this list: a project linking
# polar_license::polar_license must get each framework as one item (`-framework Security`),
# never `-lSecurity`. CMake generates the link line here; nothing links (no Apple SDK).
cmake_link() {
    command -v cmake >/dev/null || {
        echo "cmake not found (scripts/setup-c.sh installs it)" >&2
        return 1
    }
    local dir
    dir="$(mktemp -d)"
    mkdir -p "$dir/prefix/lib/cmake/polar_license" "$dir/prefix/include" "$dir/app"
    : >"$dir/prefix/lib/libpolar_license.a"
    sed -e "s|@VERSION@|0.1.0|g" -e "s|@NATIVE_STATIC_LIBS@|$1|g" \
        -e "s|@STATIC_LIBRARY@|libpolar_license.a|g" -e "s|@SHARED_LIBRARY@||g" \
        -e "s|@SHARED_SONAME@||g" -e "s|@SHARED_IMPLIB@||g" \
        bindings/c/cmake/polar_licenseConfig.cmake.in \
        >"$dir/prefix/lib/cmake/polar_license/polar_licenseConfig.cmake"
    printf 'cmake_minimum_required(VERSION 3.16)\nproject(app C)\nfind_package(polar_license CONFIG REQUIRED)\nadd_executable(app main.c)\ntarget_link_libraries(app PRIVATE polar_license::polar_license)\n' \
        >"$dir/app/CMakeLists.txt"
    printf 'int main(void) { return 0; }\n' >"$dir/app/main.c"
    local ok=0
    if cmake -S "$dir/app" -B "$dir/build" -DCMAKE_PREFIX_PATH="$dir/prefix" >"$dir/cmake.log" 2>&1; then
        local line
        line="$(cat "$dir/build/CMakeFiles/app.dir/link.txt" 2>/dev/null)"
        echo "CMake's link line: ${line#*main.c.o }"
        if [[ "$line" == *"-framework Security"* && "$line" == *"-framework CoreFoundation"* &&
            "$line" != *"-lSecurity"* && "$line" != *"-lCoreFoundation"* ]]; then
            ok=1
        fi
    else
        cat "$dir/cmake.log" >&2
    fi
    rm -rf "$dir"
    [[ $ok -eq 1 ]]
}

# Default: Apple silicon only (no code of ours depends on the CPU, only on the OS); FULL=1 adds
# Intel Macs.
TARGETS=(aarch64-apple-darwin)
[[ "${FULL:-0}" == 1 ]] && TARGETS+=(x86_64-apple-darwin)
for target in "${TARGETS[@]}"; do
    check "clippy $target" cargo-zigbuild clippy --target "$target" -p polar-license \
        -p polar-license-cli -p polar-license-c -p polar-license-relay --all-features -- -D warnings
    # FULL=1 only: the plugin has no line of its own for macOS (no cfg by OS in crates/tauri;
    # it calls the core's Licensing, linted for macOS just above), so what this check adds is
    # Tauri's own macOS dependencies (wry, tao, objc2: 177 crates, about 40 % of the stage's
    # CPU in the run of 2026-11-29). The default run's cover of the plugin: the tauri stage's
    # clippy -D warnings, docs and tests on Linux.
    if [[ "${FULL:-0}" == 1 ]]; then
        check "tauri $target" cargo-zigbuild clippy --target "$target" \
            -p tauri-plugin-polar-license -- -D warnings
    fi
    check "staticlib $target" staticlib "$target"
done

echo "macos: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
