"""Buying in the app from Python (issue #80 on the Python face): ``Licensing.buy`` follows a
checkout of the demo seed's link to its key and activates it with no key typed, with the
customer session Polar adds to the success URL (the key issued late: missing at first, waited
for) and without one (a buyer Polar matched by email: the code sent to the checkout's address,
then ``buy_signed_in``). The buyer pays as Polar's hosted page would (the test confirms the
checkout); the emulator over loopback, in process."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import pytest

from polar_license import (
    CheckoutExpired,
    CheckoutNotFound,
    InvalidInputError,
    Licensing,
    PortalError,
    Purchase,
    PurchaseSignIn,
)
from polar_license.emulator import Emulator
from relay_process import relay_serve

LINK = "polar_cl_emulatorDemoLink0123456789abcdefghijk"  # the demo seed's checkout link
KNOWN_BUYER = "jane.doe@gmail.com"  # a customer of the demo seed: matched by email, no session


def request(polar: Emulator, method: str, path: str,
            body: Optional[dict[str, Any]] = None) -> tuple[int, Any]:
    """One request to the emulator (redirects not followed): the status and the JSON body."""
    url = urlsplit(polar.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, body=data, headers={"content-type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        if resp.status in (301, 302, 303, 307, 308):
            return resp.status, resp.getheader("location")
        return resp.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def licensing(polar: Emulator, cache: Path) -> Licensing:
    return Licensing(polar.organization_id, base_url=polar.url, cache_dir=cache,
                     remember_keys=True)


def pay(polar: Emulator, checkout: str, email: str) -> Optional[str]:
    """The buyer pays with ``email``, as Polar's page does: the session token, or None."""
    status, body = request(polar, "POST",
                           f"/v1/checkouts/client/{checkout.split('/checkout/')[1]}/confirm",
                           {"customer_email": email})
    assert status == 200, body
    token: Optional[str] = body["customer_session_token"]
    return token


def test_a_purchase_with_the_success_urls_session_unlocks_with_no_key_typed(tmp_path: Path) -> None:
    with Emulator() as polar:
        assert request(polar, "POST", "/__emulator/checkouts", {"key_issue_delay_ms": 1500})[0] == 204
        app = licensing(polar, tmp_path)
        checkout = app.open_checkout_link(LINK)
        assert "/checkout/polar_c_" in checkout
        token = pay(polar, checkout, "new.buyer@example.com")
        assert token is not None and token.startswith("polar_cst_")
        began = time.monotonic()
        bought = app.buy(checkout, "pytest",
                         success_url=f"https://app.example/thanks?customer_session_token={token}")
        assert isinstance(bought, Purchase), bought
        assert time.monotonic() - began >= 1.4, "the key was missing at first: waited for"
        assert bought.display_key.startswith("****-")
        assert bought.activation.label == "pytest"
        assert polar.sign_in_codes() == [], "the session did it: no code sent"
        # Remembered: a check with no key licenses.
        report = app.check()
        assert report.licensed, report


def test_a_purchase_without_a_session_sends_the_code_to_the_checkouts_address(tmp_path: Path) -> None:
    with Emulator() as polar:
        app = licensing(polar, tmp_path)
        checkout = app.open_checkout_link(LINK)
        assert pay(polar, checkout, KNOWN_BUYER) is None, "matched by email: no session"
        first = app.buy(checkout, "pytest")
        assert isinstance(first, PurchaseSignIn), first
        assert first.email == KNOWN_BUYER
        assert f"emailing a sign-in code to {KNOWN_BUYER}" in first.user_message
        codes = polar.sign_in_codes()
        assert [c["email"] for c in codes] == [KNOWN_BUYER]
        app.sign_in(codes[-1]["code"])
        bought = app.buy_signed_in(first, "pytest")
        assert isinstance(bought, Purchase)
        assert app.check().licensed


def test_failures_are_typed_in_the_cores_words(tmp_path: Path) -> None:
    with Emulator() as polar:
        app = licensing(polar, tmp_path)
        checkout = app.open_checkout_link(LINK)
        with pytest.raises(InvalidInputError) as bad:
            app.buy(checkout, "pytest", success_url="https://app.example/thanks")
        assert bad.value.field == "success_url"
        polar.set_clock_offset(25 * 3600)
        with pytest.raises(CheckoutExpired) as expired:
            app.buy(checkout, "pytest")
        assert expired.value.code == "checkout_expired"
        assert expired.value.detail == "This checkout expired before it was paid."
        assert expired.value.next_step


DEMO_PRODUCT = "3f9e1c2d-7b4a-4e8f-9a1b-2c3d4e5f6a7b"  # the demo seed's product


def test_a_checkout_the_sellers_relay_makes_unlocks_with_no_key_typed(tmp_path: Path) -> None:
    with Emulator() as polar, relay_serve(polar, tmp_path / "signing.key",
                                          "--checkout-product", DEMO_PRODUCT) as (relay_url, _):
        app = licensing(polar, tmp_path / "cache")
        checkout = app.open_relay_checkout(relay_url, DEMO_PRODUCT,
                                           metadata={"app_version": "1.4.2", "seats": 3},
                                           email="relay.buyer@example.com")
        assert "/checkout/polar_c_" in checkout
        # Polar's checkout, made by the relay with what the app asked: prefilled, open.
        status, read = request(polar, "GET",
                               f"/v1/checkouts/client/{checkout.split('/checkout/')[1]}")
        assert status == 200, read
        assert read["status"] == "open"
        assert read["product_id"] == DEMO_PRODUCT
        assert read["customer_email"] == "relay.buyer@example.com"
        token = pay(polar, checkout, "relay.buyer@example.com")
        assert token is not None
        bought = app.buy(checkout, "pytest",
                         success_url=f"https://app.example/thanks?customer_session_token={token}")
        assert isinstance(bought, Purchase), bought
        assert app.check().licensed


def test_a_relay_checkout_asked_wrong_is_refused_before_or_by_the_relay(tmp_path: Path) -> None:
    with Emulator() as polar, relay_serve(polar, tmp_path / "signing.key",
                                          "--checkout-product", DEMO_PRODUCT) as (relay_url, _):
        app = licensing(polar, tmp_path / "cache")
        # Checked by the core, nothing sent: a product id that is no UUID, metadata past
        # Polar's limits (51 keys), a relay URL that is no https:// (loopback aside).
        with pytest.raises(InvalidInputError) as bad:
            app.open_relay_checkout(relay_url, "pro-plan")
        assert bad.value.field == "product_id"
        with pytest.raises(InvalidInputError) as bad:
            app.open_relay_checkout(relay_url, DEMO_PRODUCT,
                                    metadata={f"k{i}": i for i in range(51)})
        assert bad.value.field == "metadata"
        with pytest.raises(InvalidInputError):
            app.open_relay_checkout("http://relay.example.com", DEMO_PRODUCT)
        with pytest.raises(TypeError):
            app.open_relay_checkout(relay_url, DEMO_PRODUCT,
                                    metadata={"tags": ["a"]})  # type: ignore[dict-item]
        # Refused by the relay: a product it does not sell; a success URL on no origin the
        # seller allowed (none here). The core's typed portal failures.
        with pytest.raises(PortalError):
            app.open_relay_checkout(relay_url, "0b9c5a61-3f2e-4d7a-8c1b-5e6f7a8b9c0d")
        with pytest.raises(PortalError):
            app.open_relay_checkout(relay_url, DEMO_PRODUCT,
                                    success_url="https://evil.example/thanks")


def test_in_signed_mode_the_portal_url_takes_the_purchase_to_polar(tmp_path: Path) -> None:
    """Signed mode: ``base_url`` is the relay, which serves no checkout nor customer portal;
    ``portal_url`` sends the purchase's reads and the session's listing to Polar, and the
    check after it is the relay's, signed."""
    with Emulator() as polar, relay_serve(polar, tmp_path / "signing.key",
                                          "--checkout-product", DEMO_PRODUCT) as (relay_url, public):
        def signed(portal_url: Optional[str], cache: str) -> Licensing:
            return Licensing(polar.organization_id, base_url=relay_url, relay_keys=public,
                             portal_url=portal_url, cache_dir=tmp_path / cache,
                             remember_keys=True)

        unset = signed(None, "unset")
        checkout = unset.open_relay_checkout(relay_url, DEMO_PRODUCT)
        with pytest.raises(CheckoutNotFound):
            unset.buy(checkout, "pytest")  # asked at the relay, which has no checkouts
        app = signed(polar.url, "cache")
        checkout = app.open_relay_checkout(relay_url, DEMO_PRODUCT)
        token = pay(polar, checkout, "signed.buyer@example.com")
        assert token is not None
        bought = app.buy(checkout, "pytest",
                         success_url=f"https://app.example/thanks?customer_session_token={token}")
        assert isinstance(bought, Purchase), bought
        report = app.check()
        assert report.licensed, report
        assert report.lease is not None, "signed mode: the relay's lease"
        with pytest.raises(InvalidInputError) as bad:
            signed("http://polar.example.com", "bad")
        assert bad.value.field == "portal_base_url"
