"""Usage reports from Python (issue #68 item 3, ``Licensing.record_usage``) through the real
relay (the CLI's ``relay serve --record-usage --sign-entitlements --refuse-at-zero-credits``, a
process) in front of an emulator seeded with a meter credit of 10 units, over loopback: a
report recorded with its id; the same id sent again a duplicate, counted once (the balance the
relay reads from Polar's meter); reports down to zero, then ``credits_exhausted`` with the
balance; a key Polar does not know is its denial; bad input refused before anything is sent;
the relay gone is ``offline`` with the id to send again."""

from __future__ import annotations

import math
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from polar_license import (
    InvalidInputError,
    LicenseDenied,
    LicenseFailure,
    LicenseUnverified,
    Licensing,
    Reason,
    UsageRecorded,
)
from polar_license.emulator import Emulator

from relay_process import CLI, TOKEN, relay_serve

TOKENS = "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"
CREDIT = "6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a"
LICENSE = "3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d"
USE_KEY = "USE-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E"
METER = "tokens_used"

needs_cli = pytest.mark.skipif(not Path(CLI).is_file(), reason="POLAR_LICENSE_CLI names no binary")


def seed(organization_id: str) -> dict[str, object]:
    return {
        "organization_id": organization_id,
        "access_tokens": [{"token": TOKEN}],
        "meters": [{"id": TOKENS, "name": "Tokens", "event_name": METER,
                    "aggregation": {"func": "sum", "property": "units"}}],
        "benefits": [{"id": CREDIT, "type": "meter_credit", "meter_id": TOKENS, "units": 10}],
        "license_keys": [{"key": USE_KEY, "benefit_id": LICENSE,
                          "customer_id": "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e",
                          "subscription": {"id": "9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b"},
                          "benefits": [CREDIT]}],
    }


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[tuple[Emulator, str]]:
    """The emulator with a meter credit, and the URL of the relay recording usage before it."""
    with Emulator(seed(str(uuid.uuid4()))) as polar:
        with relay_serve(polar, tmp_path / "relay.key", "--store", "memory", "--per-ip", "0",
                         "--per-key", "0", "--record-usage", "--sign-entitlements",
                         "--refuse-at-zero-credits") as (relay, _):
            yield polar, relay


def app(polar: Emulator, cache: Path) -> Licensing:
    return Licensing(polar.organization_id, base_url=polar.url, cache_dir=cache)


@needs_cli
def test_recorded_once_then_down_to_zero_then_credits_exhausted(
        metered: tuple[Emulator, str], tmp_path: Path) -> None:
    polar, relay = metered
    here = app(polar, tmp_path)
    # The app's own id: recorded, not a duplicate, the id as given.
    first = here.record_usage(METER, 2, relay=relay, key=USE_KEY, id="py-report-1")
    assert first == UsageRecorded("py-report-1", False, first.balance)
    # The same id again (the app's retry): a duplicate, counted once.
    again = here.record_usage(METER, 2, relay=relay, key=USE_KEY, id="py-report-1")
    assert again.id == "py-report-1" and again.duplicate is True
    used = 2.0
    # Reports of 1 (ids made by the core: UUID v4) until the relay has read Polar's meter:
    # its balance then counts the first report once, not twice.
    balance = None
    for _ in range(100):
        r = here.record_usage(METER, 1, relay=relay, key=USE_KEY)
        assert uuid.UUID(r.id).version == 4 and r.duplicate is False
        used += 1
        balance = r.balance
        if balance is not None:
            break
        time.sleep(0.1)
    assert balance is not None, "the relay never read the meter's balance"
    assert math.isclose(balance, 10 - used), (balance, used)
    # Down to zero (a report crossing zero is kept: the usage happened).
    while used < 10:
        r = here.record_usage(METER, 3, relay=relay, key=USE_KEY)
        used += 3
        assert r.balance is not None and math.isclose(r.balance, 10 - used)
    # At or below zero: the seller's rule refuses it, with the balance and the report's id.
    with pytest.raises(LicenseDenied) as out:
        here.record_usage(METER, 1, relay=relay, key=USE_KEY, id="py-report-last")
    assert out.value.code is Reason.CREDITS_EXHAUSTED
    assert out.value.balance is not None and math.isclose(out.value.balance, 10 - used)
    assert out.value.usage_id == "py-report-last"
    assert out.value.user_message
    # A key Polar does not know: its denial.
    with pytest.raises(LicenseDenied) as unknown:
        here.record_usage(METER, 1, relay=relay, key="USE-NOT-A-KEY-AT-ALL")
    assert unknown.value.code is Reason.NOT_FOUND and unknown.value.balance is None


@needs_cli
def test_the_remembered_key_is_the_default(metered: tuple[Emulator, str], tmp_path: Path) -> None:
    polar, relay = metered
    here = Licensing(polar.organization_id, base_url=polar.url, cache_dir=tmp_path,
                     remember_keys=True)
    with pytest.raises(InvalidInputError) as none:
        here.record_usage(METER, 1, relay=relay)
    assert none.value.field == "key"
    here.remember_key(USE_KEY)
    assert here.record_usage(METER, 1, relay=relay, id="py-remembered").id == "py-remembered"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


BAD = [
    ("", 1.0, None, "meter"),
    ("tab\there", 1.0, None, "meter"),
    (METER, 0.0, None, "units"),
    (METER, -1.0, None, "units"),
    (METER, 1e10, None, "units"),
    (METER, math.nan, None, "units"),
    (METER, math.inf, None, "units"),
    (METER, -math.inf, None, "units"),
    (METER, 1.0, "a b", "id"),
    (METER, 1.0, "", "id"),
    (METER, 1.0, "x" * 65, "id"),
]


@pytest.mark.parametrize(("meter", "units", "id", "field"), BAD)
def test_bad_input_is_refused_before_anything_is_sent(
        polar_emulator: Emulator, tmp_path: Path, meter: str, units: float, id: Optional[str],
        field: str) -> None:
    # Nothing listens at the relay's URL: a request sent would be offline.
    relay = f"http://127.0.0.1:{closed_port()}"
    here = app(polar_emulator, tmp_path)
    with pytest.raises(InvalidInputError) as bad:
        here.record_usage(meter, units, relay=relay, key=USE_KEY, id=id)
    assert bad.value.code is Reason.INVALID_INPUT
    assert bad.value.field == field, str(bad.value)


def test_the_relay_gone_is_offline_with_the_id_to_send_again(
        polar_emulator: Emulator, tmp_path: Path) -> None:
    relay = f"http://127.0.0.1:{closed_port()}"
    here = app(polar_emulator, tmp_path)
    with pytest.raises(LicenseUnverified) as gone:
        here.record_usage(METER, 1, relay=relay, key=USE_KEY, id="py-offline")
    assert gone.value.code is Reason.OFFLINE and gone.value.usage_id == "py-offline"
    with pytest.raises(LicenseUnverified) as made:
        here.record_usage(METER, 1, relay=relay, key=USE_KEY)
    assert made.value.usage_id is not None and uuid.UUID(made.value.usage_id).version == 4



NO_EVENTS_TOKEN = "polar_oat_emulator_noevents_0123456789ab"
HELD_KEY = "USE-HELD-0F1A-4B2C-9D3E-4F5A6B7C8D9E"


@needs_cli
def test_a_report_the_relays_backlog_holds_is_usage_backlog(tmp_path: Path) -> None:
    """The relay's backlog: its token cannot write events, so nothing is ingested and a key's
    100 waiting reports fill it; the next is ``UsageBacklog`` with the core's code
    (``usage_code`` ``usage_backlog``; ``code`` stays ``rate_limited``, as shipped), the
    relay's Retry-After and the id to send again."""
    from polar_license import UsageBacklog

    held_seed = seed(str(uuid.uuid4()))
    held_seed["access_tokens"] = [
        {"token": NO_EVENTS_TOKEN, "scopes": ["license_keys:read", "license_keys:write"]}]
    held_seed["license_keys"] = [
        {"key": HELD_KEY, "customer_id": "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e"}]
    with Emulator(held_seed) as polar:
        with relay_serve(polar, tmp_path / "relay.key", "--store", "memory", "--per-ip", "0",
                         "--per-key", "0", "--record-usage",
                         token=NO_EVENTS_TOKEN) as (relay, _):
            here = app(polar, tmp_path / "cache")
            for _ in range(100):
                here.record_usage(METER, 1, relay=relay, key=HELD_KEY)
            with pytest.raises(UsageBacklog) as held:
                here.record_usage(METER, 1, relay=relay, key=HELD_KEY, id="py-held-101")
            assert held.value.usage_code == "usage_backlog"
            assert held.value.code is Reason.RATE_LIMITED  # the alias, as first shipped
            assert held.value.retry_after == 60
            assert held.value.usage_id == "py-held-101"


@needs_cli
def test_a_report_named_no_relay_goes_to_relay_url(
        metered: tuple[Emulator, str], tmp_path: Path) -> None:
    """``relay_url`` is where a report goes when ``record_usage`` names no relay (as C's and
    Tauri's relay option); without it, the base URL (Polar, which takes no report)."""
    polar, relay = metered
    here = Licensing(polar.organization_id, base_url=polar.url, cache_dir=tmp_path / "a",
                     relay_url=relay)
    sent = here.record_usage(METER, 1, key=USE_KEY, id="py-relay-url")
    assert sent.id == "py-relay-url" and sent.duplicate is False
    assert here.record_usage(METER, 1, key=USE_KEY, id="py-relay-url").duplicate is True
    with pytest.raises(LicenseFailure) as polar_took_none:
        app(polar, tmp_path / "b").record_usage(METER, 1, key=USE_KEY, id="py-to-polar")
    assert polar_took_none.value.code is Reason.PROTOCOL_ERROR
    assert polar_took_none.value.usage_id == "py-to-polar"
