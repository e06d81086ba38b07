#!/usr/bin/env bash
# Runs every example in examples/ as a user would (`cargo run --example NAME`): each must exit 0 (they assert what they print). Last line: `examples: N passed,
# N failed`.
set -u -o pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
passed=0
failed=0
cargo build -p polar-license --examples || { echo "examples: 0 passed, 1 failed"; exit 1; }
for src in examples/*.rs; do
    name="$(basename "$src" .rs)"
    echo "==> cargo run --example $name"
    if timeout 120 cargo run -q -p polar-license --example "$name"; then
        passed=$((passed + 1))
    else
        echo "not ok - $name"
        failed=$((failed + 1))
    fi
done
echo "examples: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
