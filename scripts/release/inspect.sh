#!/usr/bin/env bash
# What can be checked here of a file built for a platform that cannot run here
# (scripts/test-registry.sh, RELEASE_MATRIX=1):
#
#   bash scripts/release/inspect.sh macho FILE ARCH MINOS
#       a Mach-O of ARCH (x86_64 or arm64) whose oldest macOS (LC_BUILD_VERSION's minos, or
#       LC_VERSION_MIN_MACOSX's version) is MINOS, signed if arm64, that loads nothing but
#       libSystem (with libiconv and libcharset) and the Security and CoreFoundation frameworks,
#       each symbol bound to the library that owns it (Sec…/kSec… and the other Security names
#       to Security, CF…/kCF… to CoreFoundation: off a
#       Mac they are linked through stubs, scripts/release/macos-frameworks.mjs, and a wrong
#       binding would fail only on a Mac, at load)
#   bash scripts/release/inspect.sh glibc FILE MAX
#       an ELF that needs no glibc symbol version newer than MAX (manylinux2014: 2.17)
#
# Needs llvm-objdump (Debian's llvm) and binutils' objdump. Prints what it read; exit 1 on the
# first promise broken.
set -euo pipefail

fail() { echo "inspect: $*" >&2; exit 1; }
OBJDUMP="$(command -v llvm-objdump || ls /usr/bin/llvm-objdump-* 2>/dev/null | sort -V | tail -n 1)"

macho() {
    local file="$1" arch="$2" minos="$3" headers
    [[ -n "$OBJDUMP" ]] || fail "llvm-objdump not found"
    headers="$("$OBJDUMP" --macho --private-headers "$file")" || fail "$file: not a Mach-O"
    local cputype
    cputype="$(awk '/^Mach header/ { getline; getline; print $2; exit }' <<<"$headers")"
    case "$arch:$cputype" in
        x86_64:X86_64 | arm64:ARM64) echo "$file: $cputype" ;;
        *) fail "$file: CPU $cputype, expected $arch" ;;
    esac
    local found
    found="$(awk '/cmd LC_BUILD_VERSION/ { b = 1 } b && /minos/ { print $2; exit }
        /cmd LC_VERSION_MIN_MACOSX/ { v = 1 } v && /version/ { print $2; exit }' <<<"$headers")"
    [[ "$found" == "$minos" ]] || fail "$file: oldest macOS $found, expected $minos"
    echo "$file: oldest macOS $found"
    # Apple silicon runs no code without a signature: the linker's ad-hoc one at least.
    if [[ "$arch" == arm64 ]]; then
        grep -q 'cmd LC_CODE_SIGNATURE' <<<"$headers" || fail "$file: no code signature (arm64 Macs refuse it)"
        # A signature whose page hashes no longer match the bytes (a file changed after the
        # link, unsigned again) is refused at load as surely as none.
        python3 - "$file" <<'PY' || fail "$file: its code signature does not cover its bytes"
import hashlib, struct, sys
d = open(sys.argv[1], 'rb').read()
ncmds = struct.unpack_from('<I', d, 16)[0]
off, sig = 32, None
for _ in range(ncmds):
    cmd, size = struct.unpack_from('<II', d, off)
    if cmd == 0x1D:
        sig = struct.unpack_from('<II', d, off + 8)
    off += size
if sig is None:
    sys.exit('no LC_CODE_SIGNATURE')
base = sig[0]
magic, _, count = struct.unpack_from('>III', d, base)
if magic != 0xFADE0CC0:
    sys.exit('no embedded signature blob')
checked = 0
for i in range(count):
    _, at = struct.unpack_from('>II', d, base + 12 + 8 * i)
    cd = base + at
    if struct.unpack_from('>I', d, cd)[0] != 0xFADE0C02:
        continue
    hash_off, _, _, slots, limit = struct.unpack_from('>IIIII', d, cd + 16)
    size, kind, _, page_log = struct.unpack_from('>BBBB', d, cd + 36)
    if kind != 2 or size != 32:
        sys.exit(f'hash type {kind} (expected SHA-256)')
    page = 1 << page_log
    for n in range(slots):
        want = d[cd + hash_off + n * size: cd + hash_off + (n + 1) * size]
        got = hashlib.sha256(d[n * page: min((n + 1) * page, limit)]).digest()
        if want != got:
            sys.exit(f'page {n}: hash does not match')
    checked += slots
if checked == 0:
    sys.exit('no code directory')
print(f'{checked} pages')
PY
        echo "$file: signed (LC_CODE_SIGNATURE, every page's SHA-256 matching)"
    fi
    local dylibs
    # (A dylib's own install name, LC_ID_DYLIB, is listed too: it loads nothing.)
    local id
    id="$("$OBJDUMP" --macho --dylib-id "$file" | tail -n +2 | tr -d '[:space:]')"
    dylibs="$("$OBJDUMP" --macho --dylibs-used "$file" | tail -n +2 | sed 's/^[[:space:]]*//; s/ (compatibility.*//' |
        grep -vxF "${id:-/}")"
    echo "$dylibs" | sed 's/^/    loads /'
    while read -r d; do
        case "$d" in
            # (libiconv: Rust's std links it on Apple targets; libcharset beside it, as Apple's
            # own libiconv build does. Both are in every macOS's /usr/lib.)
            /usr/lib/libSystem.B.dylib | /usr/lib/libiconv.2.dylib | /usr/lib/libcharset.1.dylib | \
                /System/Library/Frameworks/Security.framework/Versions/A/Security | \
                /System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation) ;;
            *) fail "$file loads $d" ;;
        esac
    done <<<"$dylibs"
    # Every binding: the dylib column (short name) and the symbol.
    local binds bad
    binds="$("$OBJDUMP" --macho --bind --lazy-bind --weak-bind "$file" |
        awk '$(NF) ~ /^_/ && ($(NF-1) == "Security" || $(NF-1) == "CoreFoundation" || $(NF-1) == "libSystem") { print $(NF-1), $(NF) }' | sort -u)"
    echo "    $(grep -c '^Security ' <<<"$binds" || true) symbols bound to Security, $(grep -c '^CoreFoundation ' <<<"$binds" || true) to CoreFoundation, $(grep -c '^libSystem ' <<<"$binds" || true) to libSystem"
    bad="$(awk '($1 == "Security" && $2 ~ /^_(CF|kCF|__kCF)/) ||
        ($1 == "CoreFoundation" && $2 !~ /^_(CF|kCF|__kCF|__CF)/) ||
        ($1 == "libSystem" && $2 ~ /^_(Sec|kSec|CF|kCF)/)' <<<"$binds")"
    [[ -z "$bad" ]] || fail "$file: symbols bound to the wrong library: $bad"
}

glibc() {
    local file="$1" max="$2" newest
    newest="$(objdump -T "$file" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)"
    echo "$file: newest glibc symbol version ${newest:-none}"
    [[ -z "$newest" || "$(printf '%s\n%s\n' "$newest" "$max" | sort -V | tail -n 1)" == "$max" ]] ||
        fail "$file needs glibc $newest, newer than $max"
}

cmd="${1:-}"
shift || true
case "$cmd" in
    macho) [[ $# -eq 3 ]] || fail "usage: inspect.sh macho FILE ARCH MINOS"; macho "$@" ;;
    glibc) [[ $# -eq 2 ]] || fail "usage: inspect.sh glibc FILE MAX"; glibc "$@" ;;
    *) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
