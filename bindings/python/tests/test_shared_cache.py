"""A Python tool and the `polar-license` command line share one cache: the same files, the
same record bytes. Activate in one, check from the cache (Polar stopped) in the other, both
ways. The binary: POLAR_LICENSE_CLI (scripts/test-python.sh builds it)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from polar_license import Licensing, Reason, Source, Standing
from polar_license.emulator import DEMO_KEY, DEMO_KEY_REVOKED, Emulator

CLI = os.environ.get("POLAR_LICENSE_CLI", "")

pytestmark = pytest.mark.skipif(
    not Path(CLI).is_file(), reason="POLAR_LICENSE_CLI names no polar-license binary"
)


def cli(polar: Emulator, cache: Path, *args: str, key: str = DEMO_KEY) -> tuple[int, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLAR_")}
    env["POLAR_LICENSE_KEY"] = key
    done = subprocess.run(
        [CLI, "--org", polar.organization_id, "--base-url", polar.url,
         "--cache-dir", str(cache), "--json", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    return done.returncode, json.loads(done.stdout)


def test_python_activates_then_the_cli_checks_from_the_cache(tmp_path: Path) -> None:
    with Emulator() as polar:
        licensing = Licensing(polar.organization_id, base_url=polar.url, cache_dir=tmp_path)
        activation = licensing.activate(DEMO_KEY, "python")
        polar.stop()  # Polar is gone: the command line can only answer from the cache
        code, answer = cli(polar, tmp_path, "check", "--revalidate-after", "0")
        assert code == 0, answer
        assert answer["outcome"] == "licensed" and answer["source"] == "cache"
        assert answer["reason"] == "offline"  # why the cache answered (the CLI's --json)
        assert answer["activation_id"] == activation.id


def test_cli_activates_then_python_checks_from_the_cache(tmp_path: Path) -> None:
    with Emulator() as polar:
        code, activated = cli(polar, tmp_path, "activate", "--label", "cli")
        assert code == 0, activated
        # A denial the command line got is the Python tool's too.
        code, _ = cli(polar, tmp_path, "check", key=DEMO_KEY_REVOKED)
        assert code == 1
        polar.stop()
        licensing = Licensing(polar.organization_id, base_url=polar.url, cache_dir=tmp_path,
                              revalidate_after=0)
        report = licensing.check(DEMO_KEY)
        assert report.licensed and report.source is Source.CACHE
        assert report.fallback is Reason.OFFLINE
        assert report.activation_id == activated["activation_id"]
        denied = licensing.status(DEMO_KEY_REVOKED)
        assert denied.standing is Standing.DENIED and denied.denied is Reason.INACTIVE
