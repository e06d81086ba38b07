"""The Python face against the emulator over loopback: every answer, typed."""

from __future__ import annotations

import asyncio
import platform
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from polar_license import (
    InvalidInputError,
    LicenseDenied,
    LicenseError,
    LicenseFailure,
    LicenseUnverified,
    Licensing,
    Reason,
    Source,
    Standing,
)
from polar_license.emulator import (
    DEMO_BENEFIT_ID,
    DEMO_KEY,
    DEMO_KEY_DISABLED,
    DEMO_KEY_EXPIRED,
    DEMO_KEY_NO_ACTIVATIONS,
    DEMO_KEY_REVOKED,
    DEMO_KEY_USAGE,
    Emulator,
)

UNKNOWN_KEY = "DEMO-00000000-0000-4000-8000-00000000BEEF"


def licensing_on(polar: Emulator, cache: Path, **options: object) -> Licensing:
    return Licensing(
        polar.organization_id,
        base_url=polar.url,
        cache_dir=cache,
        machine_binding="test-machine",
        **options,  # type: ignore[arg-type]
    )


def test_activate_then_check_is_licensed(polar_licensing: Licensing) -> None:
    activation = polar_licensing.activate(DEMO_KEY, "build box")
    assert activation.license.status == "granted"
    assert activation.license.display_key == "****-" + DEMO_KEY[-6:]
    assert activation.cache_error is None

    report = polar_licensing.check(DEMO_KEY)
    assert report.licensed and bool(report)
    assert report.outcome == "licensed"
    assert report.reason is None and report.error is None
    assert report.activation_id == activation.id
    assert report.license is not None
    assert report.license.activation_id == activation.id
    assert report.license.benefit_id == DEMO_BENEFIT_ID
    # The activation is a verdict: the check answers from the cache with no request.
    assert report.source is Source.CACHE
    assert report.grace_ends_at is not None and report.verified_at is not None
    report.raise_for_license()  # licensed: raises nothing


def test_check_asks_polar_when_stale(polar_emulator: Emulator, tmp_path: Path) -> None:
    licensing = licensing_on(polar_emulator, tmp_path, revalidate_after=0)
    licensing.activate(DEMO_KEY, "box")
    before = polar_emulator.request_count()
    report = licensing.check(DEMO_KEY)
    assert report.licensed and report.source is Source.ONLINE
    assert report.grace_remaining is None
    assert polar_emulator.request_count() == before + 1
    # The core's words for a licensed device (issue #80), as every face says them.
    assert report.licensed_message == "This device is licensed."
    assert report.user_message == report.licensed_message


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (UNKNOWN_KEY, Reason.NOT_FOUND),
        (DEMO_KEY_REVOKED, Reason.INACTIVE),
        (DEMO_KEY_DISABLED, Reason.INACTIVE),
        (DEMO_KEY_EXPIRED, Reason.EXPIRED),
    ],
)
def test_check_denials_carry_their_code(polar_licensing: Licensing, key: str, code: Reason) -> None:
    report = polar_licensing.check(key)
    assert not report.licensed and not report
    assert report.outcome == "denied"
    assert report.reason is code
    assert isinstance(report.error, LicenseDenied)
    assert report.error.code is code and report.error.reason_class == "denied"
    assert report.user_message and report.detail
    with pytest.raises(LicenseDenied) as raised:
        report.raise_for_license()
    assert raised.value.code is code
    # The key never appears in what a log would print.
    for text in (repr(report), str(raised.value), repr(raised.value), report.user_message):
        assert key not in text


def test_activate_without_a_label_names_this_machine(polar_licensing: Licensing) -> None:
    # Issue #64 item 6: the default label is the host name and OS (the core's rule), so the
    # customer's device list tells this machine from the others; never the key.
    activation = polar_licensing.activate(DEMO_KEY)
    system = {"Linux": "Linux", "Darwin": "macOS", "Windows": "Windows"}[platform.system()]
    assert activation.label.endswith(f"({system})") or activation.label == system
    if system == "Linux":
        host = Path("/proc/sys/kernel/hostname").read_text(encoding="utf-8").strip()
        assert activation.label == f"{host} (Linux)"
    assert DEMO_KEY not in activation.label


def test_activation_denials(polar_licensing: Licensing) -> None:
    with pytest.raises(LicenseDenied) as raised:
        polar_licensing.activate(DEMO_KEY_NO_ACTIVATIONS, "box")
    assert raised.value.code is Reason.ACTIVATIONS_NOT_SUPPORTED

    with pytest.raises(LicenseDenied) as raised:
        for n in range(20):
            polar_licensing.activate(DEMO_KEY, f"box {n}")
    assert raised.value.code is Reason.ACTIVATION_LIMIT
    assert raised.value.status == 403


def test_validate_denials(polar_emulator: Emulator, tmp_path: Path) -> None:
    here = licensing_on(polar_emulator, tmp_path / "here")
    activation = here.activate(DEMO_KEY, "box")
    assert here.validate(DEMO_KEY, activation_id=activation.id).license.usage == 0

    # The same activation from another machine: its fingerprint differs.
    there = Licensing(polar_emulator.organization_id, base_url=polar_emulator.url,
                      cache_dir=tmp_path / "there", machine_binding="another-machine")
    with pytest.raises(LicenseDenied) as raised:
        there.validate(DEMO_KEY, activation_id=activation.id)
    assert raised.value.code is Reason.CONDITIONS_MISMATCH

    with pytest.raises(LicenseDenied) as raised:
        here.validate(DEMO_KEY, benefit_id=str(uuid.uuid4()))
    assert raised.value.code is Reason.BENEFIT_MISMATCH

    with pytest.raises(LicenseDenied) as raised:
        here.validate(DEMO_KEY, customer_id=str(uuid.uuid4()))
    assert raised.value.code is Reason.CUSTOMER_MISMATCH

    with pytest.raises(LicenseDenied) as raised:
        here.validate(DEMO_KEY_USAGE, increment_usage=1_000_000)
    assert raised.value.code is Reason.USAGE_EXHAUSTED
    assert raised.value.remaining_usages is not None


def test_offline_within_grace_then_grace_expired(polar_emulator: Emulator, tmp_path: Path) -> None:
    licensing = licensing_on(polar_emulator, tmp_path, revalidate_after=0,
                             grace_period=2, clock_tolerance=1)
    licensing.activate(DEMO_KEY, "box")
    polar_emulator.stop()

    report = licensing.check(DEMO_KEY)
    assert report.licensed and report.source is Source.CACHE
    assert report.fallback is Reason.OFFLINE
    assert report.grace_remaining is not None and report.grace_remaining.total_seconds() > 0
    # How long the device stays licensed while Polar cannot be reached, in the core's words.
    said = report.licensed_message or ""
    assert said.startswith("Polar could not be reached, so this device stays licensed for "), said
    assert said.endswith("connect to the internet before then to keep it licensed."), said

    time.sleep(3.2)  # whole seconds: the grace ends after 2 s have fully passed
    expired = licensing.check(DEMO_KEY)
    assert not expired.licensed
    assert expired.reason is Reason.GRACE_EXPIRED
    assert expired.licensed_message is None and expired.user_message
    assert isinstance(expired.error, LicenseUnverified)


def test_server_error_falls_back_but_a_denial_never_does(polar_emulator: Emulator,
                                                         tmp_path: Path) -> None:
    licensing = licensing_on(polar_emulator, tmp_path, revalidate_after=0)
    licensing.activate(DEMO_KEY, "box")
    polar_emulator.set_fault({"kind": "status", "status": 503, "body": "down"})
    report = licensing.check(DEMO_KEY)
    assert report.licensed and report.fallback is Reason.SERVER_ERROR
    polar_emulator.set_fault(None)

    assert polar_emulator.update_key(DEMO_KEY, status="revoked")
    revoked = licensing.check(DEMO_KEY)
    assert revoked.reason is Reason.INACTIVE
    assert licensing.status(DEMO_KEY).standing is Standing.DENIED
    # Polar unreachable now: the denial stands, the cache grants nothing.
    polar_emulator.stop()
    assert licensing.check(DEMO_KEY).reason is Reason.OFFLINE


def test_no_cache_and_rate_limited(polar_licensing: Licensing, polar_emulator: Emulator) -> None:
    polar_emulator.set_fault({"kind": "rate_limited", "retry_after": 30})
    report = polar_licensing.check(DEMO_KEY)
    assert report.reason is Reason.RATE_LIMITED
    assert isinstance(report.error, LicenseUnverified)
    assert report.error.retry_after == 30
    with pytest.raises(LicenseUnverified):
        polar_licensing.validate(DEMO_KEY)

    polar_emulator.set_fault({"kind": "malformed"})
    with pytest.raises(LicenseFailure) as raised:
        polar_licensing.validate(DEMO_KEY)
    assert raised.value.code is Reason.PROTOCOL_ERROR


def test_invalid_input_is_refused_before_any_request(polar_emulator: Emulator,
                                                     polar_licensing: Licensing) -> None:
    report = polar_licensing.check("")
    assert report.reason is Reason.INVALID_INPUT and report.needs_key
    assert isinstance(report.error, InvalidInputError) and report.error.field == "key"

    with pytest.raises(InvalidInputError) as raised:
        polar_licensing.validate(DEMO_KEY, activation_id="not-a-uuid")
    assert raised.value.field == "activation_id"
    assert isinstance(raised.value, ValueError)  # and a ValueError, as Python expects

    with pytest.raises(InvalidInputError):
        polar_licensing.activate(DEMO_KEY, "box", conditions={f"k{n}": n for n in range(51)})
    with pytest.raises(InvalidInputError):
        polar_licensing.validate(DEMO_KEY, increment_usage=-1)
    with pytest.raises(TypeError):
        polar_licensing.activate(DEMO_KEY, "box", conditions={"k": [1, 2]})  # type: ignore[dict-item]
    assert polar_emulator.request_count() == 0


def test_options_are_checked(tmp_path: Path) -> None:
    org = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10"
    cases: list[tuple[dict[str, object], str]] = [
        ({"base_url": "http://example.com"}, "base_url"),
        ({"grace_period": 0}, "grace_period"),
        ({"timeout": -1}, "timeout"),
        # Past a day: refused by the core, never a panic inside the transport.
        ({"timeout": sys.maxsize}, "timeout"),
        ({"connect_timeout": 86_401}, "connect_timeout"),
        # A blank machine id would be every machine's.
        ({"machine_binding": ""}, "machine_id"),
        ({"machine_binding": "  "}, "machine_id"),
        ({"released": "2026-13-01"}, "released"),
        ({"relay_keys": ["no-equals-sign"]}, "relay_keys"),
        ({"server": "staging"}, "server"),
    ]
    for options, field in cases:
        with pytest.raises(InvalidInputError) as raised:
            Licensing(org, cache_dir=tmp_path, **options)  # type: ignore[arg-type]
        assert raised.value.field == field, options
    with pytest.raises(InvalidInputError) as raised:
        Licensing("not-a-uuid", cache_dir=tmp_path)
    assert raised.value.code is Reason.INVALID_INPUT


def test_features_are_the_cores_answer(polar_emulator: Emulator, tmp_path: Path) -> None:
    licensing = licensing_on(polar_emulator, tmp_path, entitlements={
        "pro": [DEMO_BENEFIT_ID], "team": [str(uuid.uuid4())]})
    licensing.activate(DEMO_KEY, "box")
    report = licensing.check(DEMO_KEY)
    assert licensing.has_feature(report, "pro")
    assert not licensing.has_feature(report, "team")
    assert licensing.feature(report, "team").why == "not_granted_by_benefit"
    assert licensing.feature(report, "nope").why == "unknown_feature"
    assert report.features["pro"].granted and report.features["pro"].source is Source.CACHE

    denied = licensing.check(DEMO_KEY_REVOKED)
    access = licensing.feature(denied, "pro")
    assert not access and access.license_reason is Reason.INACTIVE


def test_status_deactivate_and_remembered_key(polar_emulator: Emulator, tmp_path: Path) -> None:
    licensing = licensing_on(polar_emulator, tmp_path, remember_keys=True)
    assert licensing.status(DEMO_KEY).standing is Standing.NONE
    assert licensing.check().needs_key  # nothing remembered yet

    activation = licensing.activate(DEMO_KEY, "box")
    status = licensing.status(DEMO_KEY)
    assert status.standing is Standing.LICENSED and status.activation_id == activation.id
    assert licensing.remembered_key() == "****-" + DEMO_KEY[-6:]
    assert licensing.check().licensed  # the remembered key

    said = licensing.deactivate(DEMO_KEY)
    # The core's words for a freed seat (issue #80), the CLI's and C's too.
    assert said.user_message.startswith("This device is deactivated and its seat is free")
    # Its next step is the message's own, joined to the sentence ("…: activate a license key…").
    assert said.next_step.startswith("Activate a license key")
    assert said.next_step[0].lower() + said.next_step[1:] in said.user_message
    assert polar_emulator.activations(DEMO_KEY) == []
    assert licensing.status(DEMO_KEY).activation_id is None
    assert licensing.remembered_key() is None
    with pytest.raises(InvalidInputError) as raised:
        licensing.deactivate(DEMO_KEY)  # nothing remembered to deactivate
    assert raised.value.field == "activation_id"


def test_local_trial(polar_emulator: Emulator, tmp_path: Path) -> None:
    licensing = licensing_on(polar_emulator, tmp_path, trial=14)
    report = licensing.check()
    assert not report.licensed and report.needs_key
    assert report.trial is not None and report.trial.local
    assert report.trial.state == "active" and report.trial.days_left == 14
    assert polar_emulator.request_count() == 0


def test_perpetual_fallback(polar_emulator: Emulator, tmp_path: Path) -> None:
    from datetime import date, datetime, timedelta, timezone

    # A build from 2000; the key was paid through yesterday (this machine saw it good).
    licensing = licensing_on(polar_emulator, tmp_path, released=date(2000, 1, 1),
                             revalidate_after=0)
    licensing.activate(DEMO_KEY, "box")
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    polar_emulator.update_key(DEMO_KEY, expires_at=tomorrow.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert licensing.check(DEMO_KEY).licensed
    polar_emulator.update_key(DEMO_KEY, expires_at=yesterday.strftime("%Y-%m-%dT%H:%M:%SZ"))
    report = licensing.check(DEMO_KEY)
    assert report.perpetual is not None
    assert report.perpetual.released == date(2000, 1, 1)
    assert report.licensed and report.perpetual.fallback
    assert report.perpetual.paid_through is not None

    # A build released after the key's end: expired, as without the option.
    later = licensing_on(polar_emulator, tmp_path / "later", released=date.today())
    expired = later.check(DEMO_KEY)
    assert expired.reason is Reason.EXPIRED
    assert expired.perpetual is not None and not expired.perpetual.fallback


def test_threads_run_while_a_check_waits(polar_emulator: Emulator, tmp_path: Path) -> None:
    licensing = licensing_on(polar_emulator, tmp_path)
    polar_emulator.set_fault({"kind": "delay", "ms": 1500})
    waiting = threading.Thread(target=licensing.check, args=(DEMO_KEY,))
    waiting.start()
    time.sleep(0.3)
    # Pure Python work on this thread while the check waits for Polar: with the GIL held
    # by the check, this loop could not finish before the check does.
    started = time.monotonic()
    total = sum(range(200_000))
    assert total > 0
    assert waiting.is_alive(), "the loop waited for the check: the GIL was held"
    assert time.monotonic() - started < 1.0
    waiting.join()

    # Four checks at once take about one delay, not four.
    polar_emulator.set_fault({"kind": "delay", "ms": 1000})
    started = time.monotonic()
    threads = [threading.Thread(target=licensing.check, args=(DEMO_KEY,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - started < 3.0


def test_check_async(polar_emulator: Emulator, tmp_path: Path) -> None:
    licensing = licensing_on(polar_emulator, tmp_path, revalidate_after=0)
    licensing.activate(DEMO_KEY, "box")
    polar_emulator.set_fault({"kind": "delay", "ms": 800})

    async def main() -> tuple[list[bool], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            for _ in range(5):
                await asyncio.sleep(0.05)
                ticks += 1

        reports = await asyncio.gather(*(licensing.check_async(DEMO_KEY) for _ in range(3)),
                                       ticker())
        return [r.licensed for r in reports[:3] if r is not None], ticks

    started = time.monotonic()
    licensed, ticks = asyncio.run(main())
    assert licensed == [True, True, True]
    assert ticks == 5  # the loop ran while the checks waited
    assert time.monotonic() - started < 2.2


def test_emulator_context_manager(tmp_path: Path) -> None:
    with Emulator() as polar:
        assert polar.running and polar.url.startswith("http://127.0.0.1:")
        licensing = licensing_on(polar, tmp_path)
        assert licensing.check(DEMO_KEY).licensed
    assert not polar.running
    # Polar is gone: the key checked a moment ago answers from the cache, a new one cannot.
    cached = licensing.check(DEMO_KEY)
    assert cached.licensed and cached.source is Source.CACHE
    assert licensing.check(DEMO_KEY_REVOKED).reason is Reason.OFFLINE


def test_emulator_seed_mapping(tmp_path: Path) -> None:
    seed = {
        "organization_id": str(uuid.uuid4()),
        "license_keys": [{"key": "MINE-0001", "benefit_id": str(uuid.uuid4())}],
    }
    with Emulator(seed) as polar:
        assert polar.organization_id == seed["organization_id"]
        licensing = licensing_on(polar, tmp_path)
        assert licensing.check("MINE-0001").licensed
        assert licensing.check(DEMO_KEY).reason is Reason.NOT_FOUND
    with pytest.raises(ValueError):
        Emulator({"organization_id": "not-a-uuid"})


def test_repr_redacts_the_key(polar_licensing: Licensing) -> None:
    activation = polar_licensing.activate(DEMO_KEY, "box")
    report = polar_licensing.check(DEMO_KEY)
    for text in (repr(activation), repr(report), repr(polar_licensing), str(report)):
        assert DEMO_KEY not in text
        assert DEMO_KEY[:-6] not in text
    assert "****-" + DEMO_KEY[-6:] in repr(report)


def test_one_exception_hierarchy() -> None:
    for cls in (LicenseDenied, LicenseUnverified, LicenseFailure, InvalidInputError):
        assert issubclass(cls, LicenseError)
    assert {r.reason_class for r in Reason} == {"denied", "unverified", "error"}
    code: str = Reason.NOT_FOUND  # a str enum: compares and formats as its code
    assert code == "not_found" and str(Reason.OFFLINE) == "offline"
    assert Reason("inactive") is Reason.INACTIVE


def test_2027_01_license_fields(tmp_path: Path) -> None:
    member, subscription, order = (str(uuid.uuid4()) for _ in range(3))
    seed = {
        "organization_id": str(uuid.uuid4()),
        "license_keys": [{
            "key": "SEAT-0001",
            "benefit_id": str(uuid.uuid4()),
            "member": {"id": member, "email": "dev@example.com", "external_id": "u-42"},
            "subscription": {"id": subscription, "status": "active",
                             "current_period_start": "2026-11-01T00:00:00Z",
                             "current_period_end": "2026-12-01T00:00:00Z"},
            "order": {"id": order, "created_at": "2026-11-01T00:00:00Z", "status": "paid",
                      "paid": True},
        }],
    }
    with Emulator(seed, api_version="2027-01") as polar:
        report = licensing_on(polar, tmp_path).check("SEAT-0001")
    assert report.licensed and report.license is not None
    assert report.license.member is not None and report.license.member.id == member
    assert report.license.member.external_id == "u-42"
    assert report.license.subscription is not None
    assert report.license.subscription.id == subscription
    end = report.license.subscription.current_period_end
    assert end is not None and end.isoformat() == "2026-12-01T00:00:00+00:00"
    assert report.license.order is not None and report.license.order.paid
