"""Signed mode from Python: the seller's relay (`polar-license relay serve` in front of the
emulator: conftest.py's ``relay`` fixture) signs a lease on every grant; a `Licensing` with its
public key licenses only with a lease that verifies. The binary: POLAR_LICENSE_CLI (scripts/test-python.sh builds it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from polar_license import LicenseFailure, Licensing, Reason, Source
from polar_license.emulator import DEMO_KEY, Emulator

CLI = os.environ.get("POLAR_LICENSE_CLI", "")

pytestmark = pytest.mark.skipif(
    not Path(CLI).is_file(), reason="POLAR_LICENSE_CLI names no polar-license binary"
)


def test_signed_mode_licenses_with_the_relays_lease(polar_emulator: Emulator, tmp_path: Path,
                                                    relay: tuple[str, str]) -> None:
    url, public = relay
    licensing = Licensing(polar_emulator.organization_id, base_url=url, cache_dir=tmp_path / "c",
                          relay_keys=[public], machine_binding="signed-box")
    activation = licensing.activate(DEMO_KEY, "signed box")
    assert activation.lease is not None
    assert public.startswith(activation.lease.kid + "=")
    report = licensing.check(DEMO_KEY)
    assert report.licensed and report.source is Source.CACHE
    assert report.lease is not None and report.lease.expires_at > report.lease.not_before


def test_signed_mode_refuses_a_grant_without_a_lease(polar_emulator: Emulator, tmp_path: Path,
                                                     relay: tuple[str, str]) -> None:
    _, public = relay
    # Straight to the emulator (no relay): Polar's grant carries no lease.
    licensing = Licensing(polar_emulator.organization_id, base_url=polar_emulator.url,
                          cache_dir=tmp_path / "c", relay_keys=[public],
                          machine_binding="signed-box")
    with pytest.raises(LicenseFailure) as raised:
        licensing.activate(DEMO_KEY, "no relay")
    assert raised.value.code is Reason.PROTOCOL_ERROR
    assert not licensing.check(DEMO_KEY).licensed
