"""pytest fixtures: a local Polar for each test, and a ``Licensing`` pointed at it.

Enable in a ``conftest.py``::

    pytest_plugins = ["polar_license.pytest_plugin"]

Then ``polar_emulator`` (an :class:`~polar_license.emulator.Emulator` with the demo seed,
stopped after the test) and ``polar_licensing`` (a :class:`~polar_license.Licensing` on it,
its cache in the test's ``tmp_path``, machine binding set to a fixed id).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._licensing import Licensing
from .emulator import Emulator


@pytest.fixture
def polar_emulator() -> Iterator[Emulator]:
    """A local Polar with the demo seed, for one test."""
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def polar_licensing(polar_emulator: Emulator, tmp_path: Path) -> Licensing:
    """A ``Licensing`` on ``polar_emulator``, its cache in ``tmp_path / "cache"``."""
    return Licensing(
        polar_emulator.organization_id,
        base_url=polar_emulator.url,
        cache_dir=tmp_path / "cache",
        machine_binding="pytest-machine",
    )
