#!/usr/bin/env bash
# The Python package's cold start (docs/performance.md): the time a fresh process takes to
# import polar_license, build a Licensing and answer its first check from the cache (a key
# activated just before, so the check sends nothing), median of RUNS processes; and the
# wheel's size. A benchmark, not a test: run by hand after `FULL=1 bash scripts/test-python.sh`
# built the wheel as it ships and its venv (target/python/venv; the default run's wheel is built
# at opt-level 0, without LTO: its figures would not be the package's).
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cd "$ROOT"
VENV="target/python/venv"
RUNS="${RUNS:-21}"
[[ -x "$VENV/bin/python" ]] || { echo "no $VENV: run bash scripts/test-python.sh first" >&2; exit 1; }

wheel="$(ls target/python/wheels/*.whl | head -n 1)"
echo "wheel: $(basename "$wheel"): $(stat -c %s "$wheel") bytes"
echo "installed native module: $(stat -c %s "$("$VENV/bin/python" -c 'import polar_license._native as n; print(n.__file__)')") bytes"

cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
# Activate once (the emulator, then stopped): the record the timed checks answer from.
url="$("$VENV/bin/python" - "$cache" <<'PY'
import sys
from polar_license import Licensing
from polar_license.emulator import DEMO_KEY, Emulator
with Emulator() as polar:
    Licensing(polar.organization_id, base_url=polar.url, cache_dir=sys.argv[1]).activate(DEMO_KEY, "bench")
    print(polar.url)
PY
)"

"$VENV/bin/python" - "$VENV/bin/python" "$cache" "$url" "$RUNS" <<'PY'
import statistics, subprocess, sys, time
python, cache, url, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
child = f"""
import time
c0, t0 = time.process_time(), time.perf_counter()
from polar_license import Licensing
t1 = time.perf_counter()
r = Licensing("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10", base_url={url!r},
              cache_dir={cache!r}).check("DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A")
t2, c2 = time.perf_counter(), time.process_time()
assert r.licensed and r.source.value == "cache", r
print(t1 - t0, t2 - t1, c2 - c0)
"""
inside, imports, checks, cpus = [], [], [], []
for _ in range(runs):
    start = time.perf_counter()
    out = subprocess.run([python, "-c", child], check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    i, c, cpu = map(float, out.split())
    imports.append(i); checks.append(c); inside.append(wall); cpus.append(cpu)
ms = lambda xs: f"{statistics.median(xs) * 1000:.1f} ms"
bare = []
for _ in range(runs):
    start = time.perf_counter()
    subprocess.run([python, "-c", "pass"], check=True)
    bare.append(time.perf_counter() - start)
print(f"load average {open('/proc/loadavg').read().split()[0]}; "
      f"a bare interpreter (python -c pass) {ms(bare)}")
both = [a + b for a, b in zip(imports, checks)]
print(f"{runs} fresh processes, medians: import {ms(imports)}, Licensing + first cached check "
      f"{ms(checks)}, import + check {ms(both)}; "
      f"whole process (interpreter start included) {ms(inside)}")
# On a shared machine the median moves with the load; the fastest run is the cost with the
# cores free.
print(f"fastest of {runs}: import + check {min(both) * 1000:.1f} ms, "
      f"a bare interpreter {min(bare) * 1000:.1f} ms")
# CPU time (user + system) of import + check: what the process itself spent, whatever the load.
print(f"import + check, CPU time of the process: median {ms(cpus)}")
PY
