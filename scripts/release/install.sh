#!/bin/sh
# Installs the polar-license command line from a release (published beside its archives as
# install.sh):
#
#   curl -fsSL https://github.com/polar-license/polar-license/releases/download/v0.1.0/install.sh | sh
#   sh install.sh --prefix "$HOME/.local"               # bin/polar-license under the prefix
#   sh install.sh --from ./release-artifacts            # a directory of downloaded artifacts
#
# It picks this machine's archive (polar-license-cli-VERSION-TRIPLE.tar.gz), checks it against the
# release's SHA256SUMS (a mismatch installs nothing), and copies bin/polar-license into
# PREFIX/bin. Options: --prefix DIR (default $HOME/.local), --version V, --from DIR-OR-URL
# (default the release's download address; a directory holding cli/ and SHA256SUMS, as
# scripts/release.sh writes it, works too), --target TRIPLE (another platform's archive).
# POSIX sh, curl or wget, tar, and sha256sum or shasum.
set -eu

VERSION="0.1.0"
PREFIX="${HOME:-.}/.local"
FROM=""
TARGET=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --version) VERSION="$2"; shift 2 ;;
        --from) FROM="$2"; shift 2 ;;
        --target) TARGET="$2"; shift 2 ;;
        -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$FROM" ] || FROM="https://github.com/polar-license/polar-license/releases/download/v$VERSION"

if [ -z "$TARGET" ]; then
    os="$(uname -s)"
    arch="$(uname -m)"
    case "$arch" in
        x86_64 | amd64) arch=x86_64 ;;
        aarch64 | arm64) arch=aarch64 ;;
        *) echo "install.sh: no prebuilt command line for $arch: cargo install polar-license-cli" >&2; exit 1 ;;
    esac
    case "$os" in
        Linux)
            # musl (Alpine): the static musl build, x86_64 only; otherwise glibc 2.17 or later.
            if [ "$arch" = x86_64 ] && ldd --version 2>&1 | grep -qi musl; then
                TARGET="x86_64-unknown-linux-musl"
            else
                TARGET="$arch-unknown-linux-gnu"
            fi ;;
        Darwin) TARGET="$arch-apple-darwin" ;;
        MINGW* | MSYS* | CYGWIN*) TARGET="x86_64-pc-windows-gnu" ;;
        *) echo "install.sh: no prebuilt command line for $os: cargo install polar-license-cli" >&2; exit 1 ;;
    esac
fi
name="polar-license-cli-$VERSION-$TARGET"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT INT TERM

# fetch PATH-IN-RELEASE DEST: from the directory or the address FROM.
fetch() {
    case "$FROM" in
        http://* | https://*)
            if command -v curl >/dev/null 2>&1; then
                curl -fsSL "$FROM/$(basename "$1")" -o "$2"
            else
                wget -q "$FROM/$(basename "$1")" -O "$2"
            fi ;;
        *) cp "$FROM/$1" "$2" ;;
    esac
}
fetch "SHA256SUMS" "$tmp/SHA256SUMS"
fetch "cli/$name.tar.gz" "$tmp/$name.tar.gz"
want="$(grep " cli/$name.tar.gz\$" "$tmp/SHA256SUMS" | cut -d' ' -f1)"
if command -v sha256sum >/dev/null 2>&1; then
    got="$(sha256sum "$tmp/$name.tar.gz" | cut -d' ' -f1)"
else
    got="$(shasum -a 256 "$tmp/$name.tar.gz" | cut -d' ' -f1)"
fi
if [ -z "$want" ] || [ "$want" != "$got" ]; then
    echo "install.sh: $name.tar.gz does not match SHA256SUMS (expected ${want:-no entry}, got $got): nothing installed" >&2
    exit 1
fi
tar -xzf "$tmp/$name.tar.gz" -C "$tmp"
exe=polar-license
[ -f "$tmp/$name/bin/$exe" ] || exe=polar-license.exe
mkdir -p "$PREFIX/bin"
rm -f "$PREFIX/bin/$exe"
cp "$tmp/$name/bin/$exe" "$PREFIX/bin/$exe"
chmod 755 "$PREFIX/bin/$exe"
echo "installed $PREFIX/bin/$exe ($VERSION, $TARGET)"
case ":$PATH:" in
    *":$PREFIX/bin:"*) ;;
    *) echo "add $PREFIX/bin to PATH to run polar-license" ;;
esac
