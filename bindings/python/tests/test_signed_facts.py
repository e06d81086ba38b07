"""Issue #62 item 2 from Python: signed mode trusts only signed facts (tests/signed_facts.rs
natively, tests/js/signed-facts.test.mjs on npm, bindings/c/tests/test_signed.c in C).

The app states its build's release date (perpetual fallback). Between it and the seller's relay
(`polar-license relay serve` in front of the emulator: it signs leases, and signs Polar's
denials for the request's nonce) sits the attacker's proxy (:class:`Forger`): a fake relay that
answers every validate with an unsigned ``404 "License key has expired."``, or a proxy that adds
an unsigned cancelled ``subscription`` to the relay's genuine grant. Neither makes a revoked
(refunded) key a fallback in signed mode: online, offline (the proxy dropping every
connection), nor 40 days later, and the denial is kept. Without relay keys the forged expiry
falls back: nothing is signed there (the limit docs/threat-model.md states)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Optional

import pytest

from polar_license import CheckReport, Licensing, Reason, Source, Standing
from polar_license.emulator import DEMO_KEY, Emulator

from loopback_proxy import LoopbackProxy, answer

CLI = os.environ.get("POLAR_LICENSE_CLI", "")

# The relay is the CLI's `relay serve` (conftest.py's `relay` fixture).
pytestmark = pytest.mark.skipif(
    not Path(CLI).is_file(), reason="POLAR_LICENSE_CLI names no polar-license binary"
)

HOUR = 3600
DAY = 86_400


def rfc3339(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Forger(LoopbackProxy):
    """The attacker's proxy on loopback in front of the relay at ``upstream``."""

    def __init__(self, upstream: str) -> None:
        self.expired = False  # every validate: the unsigned expiry, nothing passed on
        self.inject = False  # an unsigned cancelled subscription added to every validate's 200
        self.down = False  # every connection dropped unanswered (offline)
        self.passed = 0  # requests that reached the relay
        self.injected_end: Optional[str] = None
        super().__init__(upstream)

    def on_post(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if self.down:
            handler.close_connection = True
            handler.connection.close()
            return
        validate = handler.path.endswith("/validate")
        if validate and self.expired:
            answer(handler, 404, [("content-type", "application/json")],
                   b'{"error":"ResourceNotFound","detail":"License key has expired."}')
            return
        self.passed += 1
        status, headers, data = self.pass_on(handler, body)
        if validate and status == 200 and self.inject:
            grant = json.loads(data)
            grant["subscription"] = {
                "id": "7b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
                "status": "canceled",
                "current_period_start": rfc3339(int(time.time()) - 31 * DAY),
                "current_period_end": self.injected_end,
                "cancel_at_period_end": True,
                "ends_at": self.injected_end,
            }
            data = json.dumps(grant).encode()
        answer(handler, status, headers, data)


@pytest.fixture
def forger(relay: tuple[str, str]) -> Iterator[Forger]:
    proxy = Forger(relay[0])
    try:
        yield proxy
    finally:
        proxy.close()


def app(polar: Emulator, proxy: Forger, cache: Path, released: date, keys: list[str],
        offset: int = 0) -> Licensing:
    """An app behind the proxy for a build released on ``released``, signed unless ``keys`` is
    empty, its clock ``offset`` seconds ahead, every check asking."""
    return Licensing(polar.organization_id, base_url=proxy.url, cache_dir=cache,
                     relay_keys=keys or None, released=released, revalidate_after=0,
                     machine_binding="machine-facts", app_secret="the python app secret",
                     _clock_offset_for_testing=offset)


def no_fallback(report: CheckReport, what: str) -> CheckReport:
    assert not report.licensed, f"{what}: licensed: {report!r}"
    assert report.perpetual is None or not report.perpetual.fallback, f"{what}: {report!r}"
    return report


def test_a_forged_unsigned_expiry_never_licenses_a_revoked_key_in_signed_mode(
        polar_emulator: Emulator, tmp_path: Path, relay: tuple[str, str],
        forger: Forger) -> None:
    public = relay[1]
    start = int(time.time())
    released = datetime.fromtimestamp(start, timezone.utc).date()
    assert polar_emulator.update_key(DEMO_KEY, expires_at=rfc3339(start + 30 * DAY))
    signed = tmp_path / "signed"
    plain = tmp_path / "plain"
    app(polar_emulator, forger, signed, released, [public]).activate(DEMO_KEY, "laptop")
    app(polar_emulator, forger, plain, released, []).activate(DEMO_KEY, "desk")
    first = app(polar_emulator, forger, signed, released, [public], HOUR).check(DEMO_KEY)
    assert first.licensed and first.source is Source.ONLINE, repr(first)

    assert polar_emulator.update_key(DEMO_KEY, status="revoked")
    forger.expired = True
    forged = no_fallback(app(polar_emulator, forger, signed, released, [public],
                             2 * HOUR).check(DEMO_KEY), "the forged expiry")
    assert forged.reason is Reason.EXPIRED, repr(forged)
    # Unsigned mode: the same forgery is believed (nothing is signed), the limit stated.
    believed = app(polar_emulator, forger, plain, released, [], 2 * HOUR).check(DEMO_KEY)
    assert believed.licensed and believed.perpetual is not None and believed.perpetual.fallback, \
        repr(believed)

    # Offline: nothing answers; the cache does not fall back either.
    forger.expired, forger.down = False, True
    no_fallback(app(polar_emulator, forger, signed, released, [public],
                    3 * HOUR).check(DEMO_KEY), "offline")
    # 40 days later: the fake relay again, then offline again.
    forger.down, forger.expired = False, True
    no_fallback(app(polar_emulator, forger, signed, released, [public],
                    40 * DAY).check(DEMO_KEY), "40 days later")
    forger.expired, forger.down = False, True
    later = app(polar_emulator, forger, signed, released, [public], 40 * DAY + 60)
    no_fallback(later.check(DEMO_KEY), "40 days later, offline")
    kept = later.status(DEMO_KEY)
    assert kept.standing is Standing.DENIED and kept.denied is Reason.EXPIRED, repr(kept)


def test_an_injected_unsigned_subscription_never_makes_a_revoked_key_perpetual(
        polar_emulator: Emulator, tmp_path: Path, relay: tuple[str, str],
        forger: Forger) -> None:
    public = relay[1]
    start = int(time.time())
    # A build released three days ago: before the injected subscription's end (yesterday).
    released = datetime.fromtimestamp(start - 3 * DAY, timezone.utc).date()
    cache = tmp_path / "c"
    app(polar_emulator, forger, cache, released, [public]).activate(DEMO_KEY, "laptop")
    forger.inject, forger.passed = True, 0
    forger.injected_end = rfc3339(start - DAY)
    injected = app(polar_emulator, forger, cache, released, [public], 2 * HOUR).check(DEMO_KEY)
    assert injected.licensed and injected.source is Source.ONLINE, repr(injected)
    assert forger.passed >= 1, "the injected grant came through the proxy"
    # The license as it came carries the forged subscription (the client read it); the signed
    # paid-through date does not.
    assert injected.license is not None and injected.license.subscription is not None
    assert injected.license.subscription.status == "canceled", repr(injected.license)
    assert injected.perpetual is not None and injected.perpetual.paid_through is None, \
        "the unsigned subscription is no paid-through date"
    forger.inject = False

    assert polar_emulator.update_key(DEMO_KEY, status="revoked")
    revoked = no_fallback(app(polar_emulator, forger, cache, released, [public],
                              4 * HOUR).check(DEMO_KEY), "Polar says no longer active")
    assert revoked.reason is Reason.INACTIVE, repr(revoked)
    forger.down = True
    offline = app(polar_emulator, forger, cache, released, [public], 5 * HOUR)
    no_fallback(offline.check(DEMO_KEY), "offline")
    kept = offline.status(DEMO_KEY)
    assert kept.standing is Standing.DENIED and kept.denied is Reason.INACTIVE, repr(kept)
