"""Issue #78 on the Python face: Polar's January 2027 release (``2026-04`` removed, ``2027-01``
made current) in the middle of a run, through the control route of an emulator process (the
CLI's ``emulator``, POLAR_LICENSE_CLI; skipped without it): a granted key and a revoked one read
the same before and after, and every request named the library (``User-Agent:
polar-license/<version> (rust)``, the native core's) and pinned no version."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polar_license import Licensing, Reason, Source
from polar_license.emulator import DEMO_KEY, DEMO_KEY_REVOKED
from relay_process import CLI, clean_env

ORG = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10"  # the demo seed's organization


@pytest.fixture
def polar_process() -> Iterator[str]:
    """``polar-license emulator`` as a process: its URL."""
    if not CLI:
        pytest.skip("needs the native command line (POLAR_LICENSE_CLI)")
    served = subprocess.Popen(
        [CLI, "emulator", "--port", "0"], env=clean_env(), stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert served.stdout is not None
        first = served.stdout.readline().strip()
        assert first.startswith("listening on "), first
        yield first.removeprefix("listening on ")
    finally:
        served.terminate()
        served.wait(timeout=30)


def control(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read() or b"null")


def verdicts(licensing: Licensing) -> list[object]:
    granted = licensing.check(DEMO_KEY)
    revoked = licensing.check(DEMO_KEY_REVOKED)
    return [granted.licensed, granted.source, revoked.licensed, revoked.reason]


def test_the_rotation_day_changes_no_verdict(polar_process: str, tmp_path: Path) -> None:
    licensing = Licensing(
        ORG, base_url=polar_process, cache_dir=tmp_path, machine_binding="test-machine",
        revalidate_after=0,
    )
    before = verdicts(licensing)
    assert before == [True, Source.ONLINE, False, Reason.INACTIVE]
    status, now = control(
        polar_process, "POST", "/__emulator/api-versions",
        {"served": ["2026-10", "2027-01"], "current": "2027-01"},
    )
    assert (status, now["current"]) == (200, "2027-01")
    assert verdicts(licensing) == before

    status, seen = control(polar_process, "GET", "/__emulator/requests/seen")
    assert status == 200 and len(seen) >= 4, seen
    for r in seen:
        assert r["user_agent"].startswith("polar-license/"), r
        assert r["user_agent"].endswith(" (rust)"), r
        assert r["polar_version"] is None, r
