"""The cold import stays cheap, and the report records still behave as the frozen dataclasses
they were: the package's promise of an import and a first cached check in a few milliseconds
(docs/performance.md; scripts/bench-python.sh measures it) rests on importing no ``typing``,
``dataclasses``, ``json``, ``re`` or ``asyncio``; a fresh process checks that here (what is
imported, not how long it takes)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import polar_license
from polar_license import Lease, Licensing, Member, Source
from polar_license.emulator import DEMO_KEY, Emulator

HEAVY = ("typing", "dataclasses", "json", "re", "asyncio", "inspect")


def test_a_cold_import_and_cached_check_load_no_heavy_module(tmp_path: Path) -> None:
    with Emulator() as polar:
        Licensing(polar.organization_id, base_url=polar.url, cache_dir=tmp_path,
                  machine_binding="cold").activate(DEMO_KEY, "cold")
        child = (
            "import sys\n"
            "from polar_license import Licensing\n"
            f"r = Licensing({polar.organization_id!r}, base_url={polar.url!r}, "
            f"cache_dir={str(tmp_path)!r}, machine_binding='cold').check({DEMO_KEY!r})\n"
            "assert r.licensed and r.source.value == 'cache', r\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
        )
        done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                              timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"imported by a cold check: {done.stdout}"


def test_records_are_immutable_compare_by_value_and_repr_like_dataclasses() -> None:
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    lease = Lease("kid-1", t, t + timedelta(days=1))
    assert lease == Lease(kid="kid-1", not_before=t, expires_at=t + timedelta(days=1))
    assert lease != Lease("kid-2", t, t)
    assert hash(lease) == hash(Lease("kid-1", t, t + timedelta(days=1)))
    assert repr(lease) == (f"Lease(kid='kid-1', not_before={t!r}, "
                           f"expires_at={t + timedelta(days=1)!r})")
    with pytest.raises(AttributeError):
        lease.kid = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        delattr(lease, "kid")
    with pytest.raises(TypeError):
        Lease("kid-1", t)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Lease("kid-1", t, t, nope=1)  # type: ignore[call-arg]
    assert Member("m", None, None).email is None


def test_a_report_hides_its_native_outcome(polar_licensing: Licensing) -> None:
    polar_licensing.activate(DEMO_KEY, "box")
    report = polar_licensing.check(DEMO_KEY)
    assert report.source is Source.CACHE
    assert "_outcome" not in repr(report)
    # Two reports of the same answer compare equal although their native outcomes differ.
    again = polar_licensing.check(DEMO_KEY)
    assert report.verified_at == again.verified_at
    assert report.license == again.license


def test_type_aliases_are_there_at_run_time() -> None:
    from typing import Union, get_args

    from polar_license import MetaValue, Seconds

    assert set(get_args(Seconds)) == {timedelta, float, int}
    assert set(get_args(MetaValue)) == {bool, int, float, str}
    assert polar_license.Seconds == Union[timedelta, float, int]
    with pytest.raises(AttributeError):
        polar_license.NoSuchName  # type: ignore[attr-defined]  # noqa: B018
