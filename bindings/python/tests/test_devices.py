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
    assert polar_emulator.request_count() == 0


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
