#!/usr/bin/env bash
# Instructions of one warm cached `Licensing::check` from the file store (benches/
# check_instructions.rs), counted by valgrind's callgrind: the whole program at N checks minus
# the whole program at 0, divided by N. Instruction counts repeat run to run on one build,
# whatever else the machine does.
#
#   bash scripts/callgrind-check.sh [N]      (default N = 4000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n="${1:-4000}"
cargo bench --no-run -p polar-license --bench check_instructions 2>&1 | tail -n 1
bin="$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/check_instructions-* | grep -v '\.d$' | head -n 1)"
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
zero="$(count 0)"
many="$(count "$n")"
echo "instructions per cached check: $(((many - zero) / n)) (N=$n: $many; N=0: $zero)"
