"""Issue #68 from Python: what Polar knows of the key beyond "good or not", read through the
core (crates/relay/tests/entitlements.rs and lifecycle.rs natively, the CLI's
cli_entitlements.rs and cli_lifecycle.rs).

The emulator in process, seeded with a Feature Flag benefit and lifecycle keys; the seller's
relay in front of it (the CLI's ``relay serve --store memory --sign-entitlements``, Polar's
webhooks delivered to it). ``Licensing.entitlement`` and ``CheckReport.entitlements``: a
granted value typed as Polar's metadata, a name not granted ``None``, unsigned mode knows no
value (values need the relay), a lease whose values a proxy altered is refused. ``stopped`` on
a denied check and on ``validate``'s exception: a pause with its resume date, a rotation."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Optional, TypeVar

import pytest

from polar_license import CheckReport, LicenseDenied, Licensing, Reason, Source, StopKind
from polar_license.emulator import DEMO_ORGANIZATION_ID, Emulator

from loopback_proxy import LoopbackProxy, answer
from relay_process import CLI, TOKEN, relay_serve

pytestmark = pytest.mark.skipif(
    not Path(CLI).is_file(), reason="POLAR_LICENSE_CLI names no polar-license binary"
)

PRO = "0f6c1f5e-8b2a-4c3d-9e4f-5a6b7c8d9e0f"
LICENSE = "3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d"
CUSTOMER = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e"
KEY = "TIER-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E"  # granted the PRO flag
PAUSED = "LIFE-PAUSE-1B2C3D"
ROTATED = "LIFE-ROTATE-7B8C9D"
RESUMES_AT = datetime(2031, 6, 3, tzinfo=timezone.utc)
VALUES = {"max_upload_size": 10, "role": "editor", "ratio": 1.5, "beta": True}
EVENTS = ["subscription.updated", "subscription.canceled", "subscription.revoked",
          "subscription.paused", "subscription.resumed", "benefit.updated",
          "benefit_grant.created", "benefit_grant.updated", "benefit_grant.revoked",
          "benefit_grant.cycled", "customer.state_changed"]


def seed() -> dict[str, Any]:
    def key(key: str, n: int, benefits: list[str]) -> dict[str, Any]:
        return {"key": key, "benefit_id": LICENSE, "customer_id": CUSTOMER,
                "subscription": {"id": f"9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a{n:02x}"},
                "benefits": benefits}

    return {
        "organization_id": DEMO_ORGANIZATION_ID,
        "access_tokens": [{"token": TOKEN}],
        "benefits": [{"id": PRO, "type": "feature_flag", "metadata": VALUES}],
        "license_keys": [key(KEY, 1, [PRO]), key(PAUSED, 2, []),
                         {"key": ROTATED, "benefit_id": LICENSE, "customer_id": CUSTOMER}],
    }


def call(polar: Emulator, method: str, path: str, body: Optional[dict[str, Any]] = None) -> Any:
    request = urllib.request.Request(
        polar.url + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        text = answer.read()
        return json.loads(text) if text else None


class Seller:
    """The emulator and the relay in front of it (its URL and public key)."""

    def __init__(self, polar: Emulator, url: str, public: str) -> None:
        self.polar, self.url, self.public = polar, url, public


@pytest.fixture
def seller(tmp_path: Path) -> Iterator[Seller]:
    with Emulator(seed()) as polar:
        endpoint = call(polar, "POST", "/v1/webhooks/endpoints",
                        {"url": "http://127.0.0.1:9/later", "format": "raw", "events": EVENTS})
        with relay_serve(polar, tmp_path / "signing.key", "--store", "memory",
                         "--sign-entitlements", "--per-ip", "0", "--per-key", "0",
                         env={"POLAR_WEBHOOK_SECRET": endpoint["secret"]}) as (url, public):
            call(polar, "PATCH", f"/v1/webhooks/endpoints/{endpoint['id']}",
                 {"url": f"{url}/v1/webhooks/polar"})
            yield Seller(polar, url, public)


def app(url: str, cache: Path, public: Optional[str]) -> Licensing:
    """An app at ``url``, signed mode when ``public`` is given, every check asking online."""
    return Licensing(DEMO_ORGANIZATION_ID, base_url=url, cache_dir=cache,
                     relay_keys=public, revalidate_after=0, machine_binding=False)


T = TypeVar("T")


def until(what: str, check: Callable[[], T], done: Callable[[T], bool],
          seconds: float = 15) -> T:
    """``check()`` until ``done(answer)`` (the relay reads values, and webhooks arrive,
    within moments of the first check)."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if done(answer):
            return answer
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s: {answer!r}"
        time.sleep(0.1)


def with_values(licensing: Licensing, key: str) -> CheckReport:
    def check() -> CheckReport:
        report = licensing.check(key)
        assert report.licensed, repr(report)
        return report

    return until("values", check, lambda r: r.entitlements is not None)


def test_signed_values_are_read_typed_and_unsigned_mode_knows_none(
        seller: Seller, tmp_path: Path) -> None:
    signed = app(seller.url, tmp_path / "signed", seller.public)
    report = with_values(signed, KEY)
    assert report.entitlements == VALUES
    assert report.stopped is None
    # Licensing.entitlement: the last check's values, each typed as Polar has it.
    for name, value in VALUES.items():
        got = signed.entitlement(name)
        assert got == value and type(got) is type(value), (name, got)
        assert report.entitlement(name) == value
    # A name the flag does not set: None, and the report knows the values (not "unknown").
    assert signed.entitlement("seats") is None and report.entitlement("seats") is None
    # The states and their words are the core's (EntitlementState::message): granted says
    # nothing, absent one sentence and its next step, as the command line and Tauri say them.
    granted = signed.entitlement_state(report, "role")
    assert granted and granted.state == "granted" and granted.value == VALUES["role"]
    assert granted.user_message is None and granted.next_step is None
    absent = signed.entitlement_state(report, "seats")
    assert not absent and absent.state == "absent" and absent.value is None
    assert absent.user_message == ("This license does not include this feature: "
                                   "upgrade the license to use it.")
    assert absent.next_step == "Upgrade the license to use it."
    # A check that does not license: no value.
    denied = signed.check("NOT-A-KEY-OF-ANYONE")
    assert not denied.licensed
    assert signed.entitlement("role") is None
    refused = signed.entitlement_state(denied, "role")
    assert refused.state == "not_licensed" and refused.user_message is None

    # Unsigned mode, straight at the emulator: licensed, no value known (values need the
    # relay): entitlements is None, not {}.
    plain = app(seller.polar.url, tmp_path / "plain", None)
    report = plain.check(KEY)
    assert report.licensed and report.lease is None, repr(report)
    assert report.entitlements is None
    assert plain.entitlement("role") is None
    unsigned = plain.entitlement_state(report, "role")
    assert unsigned.state == "unsigned" and unsigned.value is None
    assert unsigned.user_message and unsigned.next_step
    assert unsigned.user_message.endswith(unsigned.next_step[0].lower() + unsigned.next_step[1:])
    # The relay without its public key: unsigned too, nothing signed is read.
    keyless = app(seller.url, tmp_path / "keyless", None)
    report = keyless.check(KEY)
    assert report.licensed and report.entitlements is None, repr(report)
    assert keyless.entitlement("max_upload_size") is None


def unpadded(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def altered(token: str, old: bytes, new: bytes) -> str:
    """``token`` (``v4.public.<payload>[.<footer>]``) with ``old`` made ``new`` in its signed
    claims (the signature is left as it was)."""
    parts = token.split(".")
    payload = unpadded(parts[2])
    assert old in payload, "the value is in the lease"
    parts[2] = base64.urlsafe_b64encode(payload.replace(old, new)).decode().rstrip("=")
    return ".".join(parts)


class Alterer(LoopbackProxy):
    """A proxy on loopback in front of the relay that edits every lease's values."""

    def __init__(self, upstream: str) -> None:
        self.altering = False  # else every answer passed on as it came
        self.edited = 0
        super().__init__(upstream)

    def on_post(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        status, headers, data = self.pass_on(handler, body)
        out: list[tuple[str, str]] = []
        for name, value in headers:
            if name.lower() == "polar-license-lease" and self.altering:
                value = altered(value, b'"max_upload_size":10', b'"max_upload_size":90')
                self.edited += 1
            out.append((name, value))
        answer(handler, status, out, data)


def test_a_lease_whose_values_were_altered_is_refused(seller: Seller, tmp_path: Path) -> None:
    # The relay reads the customer's values first (an honest app's checks).
    with_values(app(seller.url, tmp_path / "honest", seller.public), KEY)
    proxy = Alterer(seller.url)
    try:
        cached = app(proxy.url, tmp_path / "cached", seller.public)
        # Passed on as it came, the proxy's answers license with the relay's values.
        report = cached.check(KEY)
        assert report.licensed and report.entitlement("max_upload_size") == 10, repr(report)
        proxy.altering = True
        # Altered: not Polar's answer (protocol_error); the app holding an earlier grant
        # licenses from its cache, with the values of the lease it verified then.
        report = cached.check(KEY)
        assert report.source is Source.CACHE and report.fallback is Reason.PROTOCOL_ERROR, \
            repr(report)
        assert report.entitlement("max_upload_size") == 10
        assert cached.entitlement("max_upload_size") == 10
        # An app with nothing cached: refused, no value read.
        victim = app(proxy.url, tmp_path / "victim", seller.public)
        for _ in range(3):
            report = victim.check(KEY)
            assert not report.licensed, f"a lease that does not verify licensed: {report!r}"
            assert report.reason is Reason.PROTOCOL_ERROR, repr(report)
            assert report.entitlements is None
            assert victim.entitlement("max_upload_size") is None
        assert proxy.edited >= 4, "the proxy altered the leases"
    finally:
        proxy.close()


def test_a_denial_through_the_relay_says_why_the_key_stopped(
        seller: Seller, tmp_path: Path) -> None:
    apps = [app(seller.url, tmp_path / "unsigned", None),
            app(seller.url, tmp_path / "signed", seller.public)]
    for licensing in apps:  # licensed first: the relay learns each string's key id
        for key in (PAUSED, ROTATED):
            first = licensing.check(key)
            assert first.licensed and first.stopped is None, repr(first)
    call(seller.polar, "POST", f"/__emulator/keys/{PAUSED}/subscription",
         {"action": "pause_at_period_end", "resumes_at": "2031-06-03T00:00:00Z"})
    call(seller.polar, "POST", f"/__emulator/keys/{PAUSED}/subscription",
         {"action": "period_end"})
    assert seller.polar.rotate_key(ROTATED)
    for licensing in apps:
        report = until("paused", lambda: licensing.check(PAUSED),
                       lambda r: r.stopped is not None)
        assert not report.licensed and report.error is not None
        stopped = report.stopped
        assert stopped is not None and stopped.kind is StopKind.PAUSED, repr(stopped)
        assert stopped.until == RESUMES_AT and stopped.at is not None, repr(stopped)
        # validate raises the denial with the same detail; the code stays Polar's.
        with pytest.raises(LicenseDenied) as denied:
            licensing.validate(PAUSED)
        assert denied.value.code is report.reason
        assert denied.value.stopped == stopped
        rotated = until("rotated", lambda: licensing.check(ROTATED),
                        lambda r: r.stopped is not None)
        assert rotated.reason is not None and rotated.reason.value == "not_found"
        assert rotated.stopped is not None and rotated.stopped.kind is StopKind.ROTATED
        assert rotated.stopped.until is None and rotated.stopped.at is not None
        # A denial the relay cannot explain: none.
        other = licensing.check("NOT-A-KEY-OF-ANYONE")
        assert not other.licensed and other.stopped is None
