"""The suite's fixtures: the package's own pytest plugin (a local Polar per test), and the
seller's relay in front of it (the CLI's ``relay serve``: POLAR_LICENSE_CLI, which
scripts/test-python.sh builds; the tests using it skip without it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from polar_license.emulator import Emulator

from relay_process import relay_serve

pytest_plugins = ["polar_license.pytest_plugin"]


@pytest.fixture
def relay(polar_emulator: Emulator, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The relay's URL and its public key (`KID=k4.public.…`)."""
    with relay_serve(polar_emulator, tmp_path / "signing.key") as served:
        yield served
