#!/usr/bin/env bash
# Installs what the C ABI's build and tests need (scripts/test-c.sh), idempotently: gcc, g++,
# valgrind, cmake and pkg-config from apt when missing. Each step
# checks first and skips when its work is done. Run by scripts/setup.sh; safe to run by hand.
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cd "$ROOT"

# The header's generator, the pinned cbindgen, is no tool to install: bindings/c/src/tests/header.rs
# runs it as a library (a dev-dependency of polar-license-c), inside the tests' build.

# tool:package pairs installed from apt when the tool is missing (curl: the first-run guide's
# blocks ask the emulator for a fault with it; strace: crates/cli/tests/cli_writes.rs counts a
# cached launch's fsyncs and renames with it; systemd-socket-activate, from systemd:
# crates/cli/tests/cli_relay.rs starts `relay serve` under socket activation with it).
APT_TOOLS=(gcc:gcc g++:g++ valgrind:valgrind cmake:cmake pkg-config:pkg-config strip:binutils curl:curl strace:strace systemd-socket-activate:systemd)

step_apt() { apt_tools "gcc, g++, valgrind, cmake, pkg-config, strip, curl, strace, systemd-socket-activate" "${APT_TOOLS[@]}"; }

# The sanitizer runtimes come with Debian's gcc; check that they link.
step_sanitizers() {
    local dir
    dir="$(mktemp -d)"
    echo 'int main(void) { return 0; }' >"$dir/probe.c"
    if gcc -fsanitize=address,undefined "$dir/probe.c" -o "$dir/probe" && "$dir/probe"; then
        echo "ASan/UBSan runtimes present"
        rm -rf "$dir"
        return 0
    fi
    rm -rf "$dir"
    apt_install libasan8 libubsan1
}

run_steps_of setup-c "$@" -- apt sanitizers
