"""The suite's fixtures: the package's own pytest plugin (a local Polar per test), and the
seller's relay in front of it (the CLI's ``relay serve``: POLAR_LICENSE_CLI, which
scripts/test-python.sh builds; the tests using it skip without it)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from polar_license.emulator import Emulator

pytest_plugins = ["polar_license.pytest_plugin"]

CLI = os.environ.get("POLAR_LICENSE_CLI", "")
TOKEN = "polar_oat_emulator_demo_0123456789abcdef"  # the demo seed's organization token


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("POLAR_")}


@pytest.fixture
def relay(polar_emulator: Emulator, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The relay's URL and its public key (`KID=k4.public.…`)."""
    key_file = tmp_path / "signing.key"
    public = subprocess.run(
        [CLI, "relay", "keygen", "--org", polar_emulator.organization_id, "--out", str(key_file)],
        env=clean_env(), capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    serve = subprocess.Popen(
        [CLI, "relay", "serve", "--org", polar_emulator.organization_id, "--signing-key",
         str(key_file), "--base-url", polar_emulator.url, "--access-token", TOKEN,
         "--port", "0"],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline().strip()
        assert first.startswith("listening on "), first
        yield first.removeprefix("listening on "), public
    finally:
        serve.terminate()
        serve.wait(timeout=30)
