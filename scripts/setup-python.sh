#!/usr/bin/env bash
# Installs what the Python package's stage needs (scripts/test-python.sh), idempotently: a
# venv of the pinned tools (maturin, mypy, pyright) in target/python-tools, and pyright's node
# package fetched once. Skips when the venv already holds exactly the pinned list. Run by
# scripts/setup.sh (step_python); safe to run by hand.
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cd "$ROOT"

TOOLS="${PYTHON_TOOLS:-target/python-tools}"
REQS="bindings/python/requirements-tools.txt"
STAMP="$TOOLS/.requirements"

python="$(command -v python3 || true)"
if [[ -z "$python" ]] || ! "$python" -c 'import sys, venv; assert sys.version_info >= (3, 9)' 2>/dev/null; then
    apt_install python3 python3-venv python3-pip || exit 1
    python="$(command -v python3)"
fi

if [[ -x "$TOOLS/bin/maturin" ]] && cmp -s "$REQS" "$STAMP"; then
    echo "python tools present ($TOOLS), skipping"
else
    rm -rf "$TOOLS"
    "$python" -m venv "$TOOLS" &&
        "$TOOLS/bin/pip" install -q --disable-pip-version-check -r "$REQS" &&
        cp "$REQS" "$STAMP" || exit 1
fi
# pyright's first run fetches its node package from npm: once here, not in the timed stage.
"$TOOLS/bin/pyright" --version
