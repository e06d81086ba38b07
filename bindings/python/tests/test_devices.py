"""Devices from Python (issue #64 on the Python face): out of activations, sign in with the
emailed code, list the key's devices, free one by its id, activate here. Against the emulator
over loopback; the code is read from the emulator (``Emulator.sign_in_codes``, what its
``GET /__emulator/customer-session/codes`` answers), as Polar would mail it."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest

from polar_license import (
    CustomerSelectionRequired,
    DeviceManagementOff,
    InvalidInputError,
    KeyNotFound,
    LicenseDenied,
    Licensing,
    NotSignedIn,
    PortalError,
    PortalRateLimited,
    Reason,
    RecoverableKey,
    SessionExpired,
    SignInCodeInvalid,
)
from polar_license.emulator import DEMO_KEY, DEMO_KEY_NO_ACTIVATIONS, Emulator

EMAIL = "jane.doe@gmail.com"  # the demo seed's customer


def machine(polar: Emulator, cache: Path, name: str) -> Licensing:
    return Licensing(polar.organization_id, base_url=polar.url, cache_dir=cache,
                     machine_binding=name)


def last_code(polar: Emulator) -> str:
    codes = polar.sign_in_codes()
    assert codes, "no sign-in code was sent"
    code: str = codes[-1]["code"]
    return code


def sign_in(polar: Emulator, licensing: Licensing) -> datetime:
    licensing.request_sign_in_code(EMAIL)
    return licensing.sign_in(last_code(polar).lower())  # any case, as typed


def test_sign_in_list_free_another_and_activate_here_at_the_limit(tmp_path: Path) -> None:
    with Emulator() as polar:
        old = machine(polar, tmp_path / "old", "old-laptop")
        desk = machine(polar, tmp_path / "desk", "desktop")
        here = machine(polar, tmp_path / "here", "this-laptop")
        gone = old.activate(DEMO_KEY, "Old laptop")
        desk.activate(DEMO_KEY, "Desktop")
        mine = here.activate(DEMO_KEY, "This laptop")
        new = machine(polar, tmp_path / "new", "new-laptop")
        with pytest.raises(LicenseDenied) as limit:
            new.activate(DEMO_KEY, "New laptop")
        assert limit.value.code is Reason.ACTIVATION_LIMIT

        # Before signing in: NotSignedIn, and nothing sent.
        before = polar.request_count()
        with pytest.raises(NotSignedIn) as none:
            here.devices(DEMO_KEY)
        assert none.value.kind == "not_signed_in" and none.value.code is Reason.INVALID_INPUT
        assert none.value.field == "session"
        assert polar.request_count() == before

        ends = sign_in(polar, here)
        left = ends - datetime.now(timezone.utc)
        assert timedelta(minutes=59) < left <= timedelta(hours=1)
        # The session is a credential: sealed, never in plain text beside the cache.
        for path in (tmp_path / "here").rglob("*"):
            if path.is_file():
                assert b"polar_cst_" not in path.read_bytes(), path

        listed = here.devices(DEMO_KEY)
        assert listed.limit_activations == 3
        assert listed.display_key == "****-" + DEMO_KEY[-6:]
        assert [(d.id, d.label, d.this_machine) for d in listed.devices] == [
            (gone.id, "Old laptop", False),
            (listed.devices[1].id, "Desktop", False),
            (mine.id, "This laptop", True),
        ]
        assert listed.this_machine is not None and listed.this_machine.id == mine.id
        assert all(d.activated_at.tzinfo is not None for d in listed.devices)
        for text in (repr(listed), str(listed)):
            assert DEMO_KEY not in text

        # Free the dead laptop from here (the public deactivate: no session needed).
        assert here.free_device(gone.id, DEMO_KEY) is False
        with pytest.raises(LicenseDenied) as twice:
            new.free_device(gone.id, DEMO_KEY)
        assert twice.value.code is Reason.NOT_FOUND
        # The slot is free: the new machine activates at what was the limit.
        new.activate(DEMO_KEY, "New laptop")
        labels = [d.label for d in here.devices(DEMO_KEY).devices]
        assert labels == ["Desktop", "This laptop", "New laptop"]
        # This machine's activation is still remembered, and still licenses here.
        assert here.check(DEMO_KEY).licensed

        # Freeing this machine's own activation says so, and the cache forgets it.
        assert here.free_device(mine.id, DEMO_KEY) is True
        assert here.status(DEMO_KEY).activation_id is None


def test_device_management_off_says_so(tmp_path: Path) -> None:
    benefit = str(uuid.uuid4())
    seed = {
        "organization_id": str(uuid.uuid4()),
        "license_keys": [{"key": "OFF-0001", "benefit_id": benefit, "limit_activations": 3,
                          "customer_email": EMAIL}],
        "benefits": [{"id": benefit, "enable_customer_admin": False}],
    }
    with Emulator(seed) as polar:
        here = machine(polar, tmp_path, "box")
        here.activate("OFF-0001", "box")
        sign_in(polar, here)
        with pytest.raises(DeviceManagementOff) as off:
            here.devices("OFF-0001")
        assert off.value.kind == "device_management_off" and off.value.code is None
        assert "enable_customer_admin" in off.value.detail
        # Freeing by id still works.
        activation = polar.activations("OFF-0001")[0]["id"]
        assert here.free_device(activation, "OFF-0001") is True


def test_wrong_key_used_code_and_expired_session(polar_emulator: Emulator,
                                                 tmp_path: Path) -> None:
    here = machine(polar_emulator, tmp_path, "box")
    here.request_sign_in_code(EMAIL)
    code = last_code(polar_emulator)
    here.sign_in(code)
    with pytest.raises(KeyNotFound) as other:
        here.devices("NOT-A-KEY-OF-HERS")
    assert other.value.code is Reason.NOT_FOUND
    assert "NOT-A-KEY-OF-HERS" not in str(other.value)
    # A key with no activations: an empty list.
    assert here.devices(DEMO_KEY_NO_ACTIVATIONS).devices == ()

    with pytest.raises(SignInCodeInvalid) as used:
        here.sign_in(code)
    assert used.value.kind == "code_invalid_or_expired" and used.value.code is None
    assert isinstance(used.value, PortalError)

    polar_emulator.set_clock_offset(3601)  # Polar's hour passes
    with pytest.raises(SessionExpired):
        here.devices(DEMO_KEY)
    # It is forgotten: the next try asks to sign in, with no request.
    before = polar_emulator.request_count()
    with pytest.raises(NotSignedIn):
        here.devices(DEMO_KEY)
    assert polar_emulator.request_count() == before


def test_sign_out_forgets_the_session(polar_emulator: Emulator, tmp_path: Path) -> None:
    here = machine(polar_emulator, tmp_path, "box")
    sign_in(polar_emulator, here)
    assert here.devices(DEMO_KEY).devices == ()
    here.sign_out()
    with pytest.raises(NotSignedIn):
        here.devices(DEMO_KEY)


def test_the_code_rate_limit_gives_the_wait(tmp_path: Path) -> None:
    with Emulator(rate_limit=True) as polar:
        here = machine(polar, tmp_path, "box")
        for _ in range(6):  # Polar: 6 a minute per address, then 900 s blocked
            here.request_sign_in_code(EMAIL)
        with pytest.raises(PortalRateLimited) as limited:
            here.request_sign_in_code(EMAIL)
    assert limited.value.code is Reason.RATE_LIMITED
    assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 900


def test_several_customers_with_one_email(tmp_path: Path) -> None:
    org, benefit = str(uuid.uuid4()), str(uuid.uuid4())
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    seed = {
        "organization_id": org,
        "license_keys": [
            {"key": "ONE-0001", "benefit_id": benefit, "customer_id": first,
             "customer_email": EMAIL},
            {"key": "TWO-0001", "benefit_id": benefit, "customer_id": second,
             "customer_email": EMAIL},
        ],
    }
    with Emulator(seed) as polar:
        here = machine(polar, tmp_path, "box")
        with pytest.raises(CustomerSelectionRequired) as choose:
            here.request_sign_in_code(EMAIL)
        assert choose.value.code is Reason.INVALID_INPUT
        assert choose.value.field == "customer_id"
        assert {c for c, _ in choose.value.customers} == {first, second}
        here.request_sign_in_code(EMAIL, customer_id=second)
        here.sign_in(last_code(polar))
        assert here.devices("TWO-0001").devices == ()
        with pytest.raises(KeyNotFound):
            here.devices("ONE-0001")


def test_bad_input_is_refused_unsent(polar_emulator: Emulator, tmp_path: Path) -> None:
    here = machine(polar_emulator, tmp_path, "box")
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: here.request_sign_in_code("jane"), "email"),
        (lambda: here.request_sign_in_code(EMAIL, customer_id="not-a-uuid"), "customer_id"),
        (lambda: here.sign_in("ABC-12"), "code"),
        (lambda: here.devices(), "key"),  # no key given, none remembered
        (lambda: here.free_device("not-a-uuid", DEMO_KEY), "activation_id"),
    ]
    for call, field in cases:
        with pytest.raises(InvalidInputError) as raised:
            call()
        assert raised.value.field == field
        # The core's words for what the person typed (issue #80), never the app's settings.
        if field in ("email", "code"):
            assert "settings" not in raised.value.user_message, raised.value.user_message
            assert raised.value.next_step.startswith("Type the "), raised.value.next_step
    assert polar_emulator.request_count() == 0


# Key recovery and rotation: the demo customer's keys in a seed of their own, one customer id
# (one email, one customer), each kind of key the recovery must tell apart (each by its last six
# characters, as the redacted form shows it).
JANE = str(uuid.uuid4())
GOOD = "GOOD-7C1A2B3D-4E5F-8A9B-0C1D2E3F-A00001"  # granted, one seat, no expiry
LATER = "LATER-7C1A2B3D-4E5F-8A9B-0C1D2E3F-B00002"  # granted, expires in 2099
REVOKED = "REVOKED-7C1A2B3D-4E5F-8A9B-0C1D2E3F-C00003"
EXPIRED = "EXPIRED-7C1A2B3D-4E5F-8A9B-0C1D2E3F-D00004"
OTHERS = "OTHERS-7C1A2B3D-4E5F-8A9B-0C1D2E3F-E00005"  # another customer's


def customer_seed() -> dict[str, object]:
    benefit = str(uuid.uuid4())

    def key(key: str, **more: object) -> dict[str, object]:
        return {"key": key, "benefit_id": benefit, "customer_id": JANE, "customer_email": EMAIL,
                "limit_activations": 1, **more}

    return {
        "organization_id": str(uuid.uuid4()),
        "license_keys": [
            key(GOOD),
            key(LATER, expires_at="2099-01-01T00:00:00Z"),
            key(REVOKED, status="revoked"),
            key(EXPIRED, expires_at="2020-01-01T00:00:00Z"),
            {"key": OTHERS, "benefit_id": benefit, "customer_id": str(uuid.uuid4()),
             "customer_email": "someone.else@example.com", "limit_activations": 1},
        ],
        "benefits": [{"id": benefit, "enable_customer_admin": True}],
    }


def remembering(polar: Emulator, cache: Path, name: str) -> Licensing:
    return Licensing(polar.organization_id, base_url=polar.url, cache_dir=cache,
                     machine_binding=name, remember_keys=True)


def rotate(polar: Emulator, key: str) -> str:
    """The seller rotates ``key`` (what Polar's rotate does: the record id, limits and
    activations kept, the old string 404): the new string."""
    new = polar.rotate_key(key)
    assert new is not None and new != key, new
    assert polar.rotate_key("NO-SUCH-KEY") is None
    return new


def test_recovery_offers_only_granted_unexpired_keys_and_activates_one(tmp_path: Path) -> None:
    with Emulator(customer_seed()) as polar:
        here = remembering(polar, tmp_path / "here", "new-laptop")
        before = polar.request_count()
        with pytest.raises(NotSignedIn):
            here.recoverable_keys()
        with pytest.raises(NotSignedIn):
            here.recover_key(str(uuid.uuid4()), "New laptop")
        assert polar.request_count() == before

        sign_in(polar, here)
        offered = here.recoverable_keys()
        assert all(isinstance(k, RecoverableKey) for k in offered)
        # Granted and unexpired only: not the revoked, the expired, nor another customer's.
        assert sorted(k.display_key for k in offered) == sorted(
            "****-" + k[-6:] for k in (GOOD, LATER))
        by_display = {k.display_key: k for k in offered}
        later = by_display["****-" + LATER[-6:]]
        assert later.expires_at == datetime(2099, 1, 1, tzinfo=timezone.utc)
        assert later.limit_activations == 1
        assert by_display["****-" + GOOD[-6:]].expires_at is None
        # The whole key is never handed out: not in any field, repr or str.
        for k in offered:
            for text in (repr(k), str(k), k.id, k.display_key):
                for whole in (GOOD, LATER, REVOKED, EXPIRED, OTHERS):
                    assert whole not in text

        # An id that is none of the offered keys: KeyNotFound, nothing activated.
        with pytest.raises(KeyNotFound) as unknown:
            here.recover_key(str(uuid.uuid4()), "New laptop")
        assert unknown.value.code is Reason.NOT_FOUND
        assert polar.activations(GOOD) == [] and polar.activations(LATER) == []

        good = by_display["****-" + GOOD[-6:]]
        recovered = here.recover_key(good.id, "New laptop")
        assert recovered.label == "New laptop"
        assert recovered.license.id == good.id
        assert recovered.license.display_key == good.display_key
        assert [a["id"] for a in polar.activations(GOOD)] == [recovered.id]
        assert GOOD not in repr(recovered)
        # Remembered: the app checks with no key, and the activation licenses here.
        assert here.remembered_key() == good.display_key
        report = here.check()
        assert report.licensed and report.license is not None
        assert report.license.activation_id == recovered.id
        # Recovery activates as ``activate`` does: the one-seat key is full for another machine.
        other = remembering(polar, tmp_path / "other", "desktop")
        sign_in(polar, other)
        with pytest.raises(LicenseDenied) as full:
            other.recover_key(good.id, "Desktop")
        assert full.value.code is Reason.ACTIVATION_LIMIT

        polar.set_clock_offset(3601)  # Polar's hour passes
        with pytest.raises(SessionExpired):
            here.recoverable_keys()
        with pytest.raises(NotSignedIn):  # forgotten
            here.recover_key(good.id, "New laptop")


def test_a_rotated_key_is_followed_keeping_its_activation(tmp_path: Path) -> None:
    with Emulator(customer_seed()) as polar:
        here = remembering(polar, tmp_path / "here", "laptop")
        mine = here.activate(GOOD, "This laptop")
        new = rotate(polar, GOOD)
        assert new != GOOD
        # Polar answers the old string not_found at once.
        with pytest.raises(LicenseDenied) as gone:
            here.validate(GOOD, activation_id=mine.id)
        assert gone.value.code is Reason.NOT_FOUND

        with pytest.raises(NotSignedIn):
            here.follow_rotation(GOOD)
        sign_in(polar, here)
        followed = here.follow_rotation(GOOD)
        assert followed.key == new
        assert followed.display_key == "****-" + new[-6:]
        assert followed.license.activation_id == mine.id
        for text in (repr(followed), str(followed)):
            assert new not in text and GOOD not in text
        # The same activation, still the key's only one: no second seat was taken.
        assert [a["id"] for a in polar.activations(new)] == [mine.id]
        assert here.status(new).activation_id == mine.id
        assert here.check(new).licensed
        # The new string remembered in the old one's place; the old record forgotten.
        assert here.remembered_key() == followed.display_key
        assert here.check().licensed
        assert here.status(GOOD).stored == "empty"
        # The limit-1 key is full: another machine is refused a seat.
        with pytest.raises(LicenseDenied) as full:
            remembering(polar, tmp_path / "other", "desktop").activate(new, "Desktop")
        assert full.value.code is Reason.ACTIVATION_LIMIT

        # Typed failures: nothing cached of the old string now (no record id to follow), and
        # a key that was not rotated.
        with pytest.raises(InvalidInputError) as nothing:
            here.follow_rotation(GOOD)
        assert nothing.value.field == "key"
        assert GOOD not in str(nothing.value)
        with pytest.raises(KeyNotFound):
            here.follow_rotation(new)
        assert here.check(new).licensed  # left alone


CLI = os.environ.get("POLAR_LICENSE_CLI", "")


@pytest.mark.skipif(not Path(CLI).is_file(), reason="POLAR_LICENSE_CLI names no binary")
def test_the_cli_lists_devices_with_the_session_python_signed_in(tmp_path: Path) -> None:
    with Emulator() as polar:
        # This machine's own binding (the OS machine id), as the command line's.
        here = Licensing(polar.organization_id, base_url=polar.url, cache_dir=tmp_path)
        mine = here.activate(DEMO_KEY, "python box")
        sign_in(polar, here)
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLAR_")}
        done = subprocess.run(
            [CLI, "--org", polar.organization_id, "--base-url", polar.url, "--cache-dir",
             str(tmp_path), "--json", "devices", "--key", DEMO_KEY],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        listed = json.loads(done.stdout)
        assert [(d["id"], d["this_machine"]) for d in listed["devices"]] == [(mine.id, True)]


@pytest.mark.skipif(not Path(CLI).is_file(), reason="POLAR_LICENSE_CLI names no binary")
def test_through_the_relay_without_a_sign_in_list_free_another_and_activate_here(
        polar_emulator: Emulator, relay: tuple[str, str], tmp_path: Path) -> None:
    """Issue #64's other way: the seller's relay lists the key's devices (the key proves it is
    the customer's), no email code; the core picks it when no session is remembered."""
    polar, url = polar_emulator, relay[0]
    old = machine(polar, tmp_path / "old", "old-laptop")
    gone = old.activate(DEMO_KEY, "Old laptop")
    here = machine(polar, tmp_path / "here", "this-laptop")
    mine = here.activate(DEMO_KEY, "This laptop")
    # Without the relay and no sign-in: not signed in, no request.
    with pytest.raises(NotSignedIn):
        here.list_devices(DEMO_KEY)
    listed = here.list_devices(DEMO_KEY, relay=url)
    assert [(d.id, d.label, d.this_machine) for d in listed.devices] == [
        (gone.id, "Old laptop", False), (mine.id, "This laptop", True)]
    assert listed.display_key.startswith("****-") and DEMO_KEY not in repr(listed)
    assert listed.this_machine is not None and listed.this_machine.id == mine.id
    # Free the dead laptop's seat by id; the next listing no longer has it.
    assert here.free_device(gone.id, DEMO_KEY) is False
    assert [d.id for d in here.list_devices(DEMO_KEY, relay=url).devices] == [mine.id]
    # A key the relay's Polar does not know.
    with pytest.raises(KeyNotFound):
        here.list_devices("DEMO-NOT-A-KEY-OF-ANYONE", relay=url)
    # Signed in, the session is the way (the core's order), relay or not.
    sign_in(polar, here)
    assert [d.id for d in here.list_devices(DEMO_KEY, relay=url).devices] == [mine.id]


@pytest.mark.skipif(not Path(CLI).is_file(), reason="POLAR_LICENSE_CLI names no binary")
def test_with_relay_url_a_reinstall_at_the_limit_reclaims_its_seat_with_no_sign_in(
        polar_emulator: Emulator, relay: tuple[str, str], tmp_path: Path) -> None:
    """``relay_url`` (issue #80's heal on Python, as C's and Tauri's relay option): at the
    activation limit a reinstall on the same machine (a new cache) finds its own activation
    through the seller's relay, with no sign-in, and takes none; ``list_devices`` uses the
    relay when named none. Without it, the limit as before; a bad URL refused when made."""
    polar, url = polar_emulator, relay[0]
    held = [machine(polar, tmp_path / f"m{n}", f"machine-{n}").activate(DEMO_KEY, f"Machine {n}")
            for n in range(3)]
    assert len(polar.activations(DEMO_KEY)) == 3
    bare = machine(polar, tmp_path / "bare", "machine-0")
    with pytest.raises(LicenseDenied) as limit:
        bare.activate(DEMO_KEY, "Machine 0")
    assert limit.value.code is Reason.ACTIVATION_LIMIT
    with pytest.raises(NotSignedIn):
        bare.list_devices(DEMO_KEY)

    again = Licensing(polar.organization_id, base_url=polar.url, cache_dir=tmp_path / "again",
                      machine_binding="machine-0", relay_url=url)
    assert again.activate(DEMO_KEY, "Machine 0").id == held[0].id
    assert len(polar.activations(DEMO_KEY)) == 3  # none taken
    assert again.check(DEMO_KEY).licensed
    listed = again.list_devices(DEMO_KEY)
    assert listed.this_machine is not None and listed.this_machine.id == held[0].id
    assert len(listed.devices) == 3

    with pytest.raises(InvalidInputError) as bad:
        Licensing(polar.organization_id, base_url=polar.url, cache_dir=tmp_path / "bad",
                  relay_url="http://relay.example.com")
    assert bad.value.field == "relay_url"


def test_a_reinstall_at_the_limit_reclaims_its_own_activation(tmp_path: Path) -> None:
    """Self-healing activations (issue #80): a reinstall on the same machine (a new cache) at
    the activation limit, signed in, ends licensed with the activation the machine already
    holds (found by the fingerprint its meta records) and takes none; a new machine at the
    limit is refused as before and sees the other machine's row told apart."""
    with Emulator(customer_seed()) as polar:
        first = machine(polar, tmp_path / "first", "machine-A")
        mine = first.activate(GOOD, "Jane's laptop")
        assert len(polar.activations(GOOD)) == 1

        again = machine(polar, tmp_path / "again", "machine-A")
        sign_in(polar, again)
        reclaimed = again.activate(GOOD, "Jane's laptop")
        assert reclaimed.id == mine.id
        assert len(polar.activations(GOOD)) == 1  # no new activation
        assert again.check(GOOD).licensed
        own = again.devices(GOOD)
        assert own.this_machine is not None and own.this_machine.id == mine.id

        other = machine(polar, tmp_path / "other", "machine-B")
        sign_in(polar, other)
        with pytest.raises(LicenseDenied) as limit:
            other.activate(GOOD, "Office desktop")
        assert limit.value.code is Reason.ACTIVATION_LIMIT
        assert len(polar.activations(GOOD)) == 1
        rows = other.devices(GOOD)
        assert rows.this_machine is None
        (row,) = rows.devices
        assert row.label == "Jane's laptop" and row.platform and "/" in row.platform
        assert row.last_seen is None
