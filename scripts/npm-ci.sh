#!/usr/bin/env bash
# Installs the pinned npm tools of scripts/npm from its lock file (used by scripts/setup.sh and
# scripts/setup-wasm.sh).
#
# `npm ci` first. A registry mirror that lacks some platforms' optional packages (rollup's
# @rollup/rollup-<os>-<cpu> builds for Android, FreeBSD, Windows…) makes `npm ci` refuse the
# lock ("Missing: … from lock file") although this platform's package is there; then
# `npm install --no-save` installs the same locked versions, skips the absent optional ones, and
# leaves package-lock.json as committed (checked below).
set -euo pipefail

NPM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/npm" && pwd)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

if npm ci --prefix "$NPM_DIR" --no-audit --no-fund >"$log" 2>&1; then
    cat "$log"
    exit 0
fi
cat "$log"
if ! grep -q 'Missing: .* from lock file' "$log"; then
    exit 1
fi
echo "npm ci refused the lock (optional packages missing from this registry): npm install --no-save" >&2
before="$(sha256sum "$NPM_DIR/package-lock.json")"
npm install --prefix "$NPM_DIR" --no-save --no-audit --no-fund
if [[ "$(sha256sum "$NPM_DIR/package-lock.json")" != "$before" ]]; then
    echo "npm install changed scripts/npm/package-lock.json: the lock is out of date" >&2
    exit 1
fi
