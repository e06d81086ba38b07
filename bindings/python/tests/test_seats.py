"""Floating seats from Python (issue #76, ``Licensing.acquire_seat``) through the real relay (the
CLI's ``relay serve``, a process, in front of the emulator) over loopback, held by the core's
hold: a seat acquired, heartbeated and released, the next machine ``seats_full`` meanwhile; no
relay keys, no seat and nothing sent; a ``200`` forged by a loopback server (no relay at all)
holds no seat, nor does the relay's own seat under another relay's key (given back); the relay
gone, a seat is held until its signed lease ends and lost (``seat_lost``) there, whether its
heartbeat runs on the library's thread or the app's ``poll``, and a grace moves the end on; a
seat given back behind the holder's back is ``gone`` at its next heartbeat."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import pytest

from polar_license import (
    InvalidInputError,
    LicenseFailure,
    LicenseUnverified,
    Licensing,
    Reason,
    Seat,
    SeatState,
    SeatsFull,
)
from polar_license.emulator import DEMO_BENEFIT_ID, DEMO_KEY, Emulator

from loopback_proxy import LoopbackProxy, answer
from relay_process import CLI, clean_env, relay_serve

pytestmark = pytest.mark.skipif(not Path(CLI).is_file(),
                                reason="POLAR_LICENSE_CLI names no polar-license binary")

# The relay's seats for the demo key's benefit (its limit_activations would be shared with the
# other suites' activations).
FLAGS = ("--store", "memory", "--per-ip", "0", "--per-key", "0")


def seats(n: int) -> tuple[str, ...]:
    return (*FLAGS, "--seats", f"{DEMO_BENEFIT_ID}={n}")


def app(polar: Emulator, url: str, cache: Path, keys: Optional[list[str]] = None,
        machine: str = "box") -> Licensing:
    return Licensing(polar.organization_id, base_url=url, cache_dir=cache, relay_keys=keys,
                     machine_binding=machine)


@pytest.fixture
def one_seat(polar_emulator: Emulator, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The relay with one seat for the demo key: its URL and public key."""
    with relay_serve(polar_emulator, tmp_path / "relay.key", *seats(1)) as served:
        yield served


def test_a_seat_is_held_heartbeated_and_released(polar_emulator: Emulator, tmp_path: Path,
                                                 one_seat: tuple[str, str]) -> None:
    url, public = one_seat
    here = app(polar_emulator, url, tmp_path / "a", [public])
    there = app(polar_emulator, url, tmp_path / "b", [public], machine="other-box")
    with here.acquire_seat(DEMO_KEY) as seat:
        assert seat.held and seat.state.value == "held" and seat.lost is None
        assert len(seat.id) == 36 and not seat.ci and isinstance(seat, Seat)
        assert repr(seat) == f"Seat(id={seat.id!r}, state='held')"
        assert seat.machine == here.machine_fingerprint
        assert (seat.in_use, seat.size) == (1, 1)
        # The relay's default life, 300 s: a heartbeat every third of it, not yet due.
        assert seat.heartbeat_every.total_seconds() == 100
        wait = seat.next_wait
        assert wait is not None and 99 < wait <= 100
        # The only seat is held: the next machine is told how many and when one frees.
        with pytest.raises(SeatsFull) as full:
            there.acquire_seat(DEMO_KEY)
        assert full.value.code is Reason.SEATS_FULL
        assert (full.value.in_use, full.value.size) == (1, 1)
        assert full.value.frees_at is not None and full.value.user_message
        before = seat.expires_at
        time.sleep(1.1)
        assert seat.heartbeat() is SeatState.HELD
        assert seat.expires_at > before
    # Released on the way out: the next machine gets it; a second release sends nothing.
    assert seat.state is SeatState.RELEASED and seat.release() is False
    with pytest.raises(InvalidInputError):
        seat.heartbeat()
    other = there.acquire_seat(DEMO_KEY, background=False)
    assert other.release() is True


def test_without_relay_keys_no_seat_is_held_and_nothing_is_sent(
        polar_emulator: Emulator, tmp_path: Path, one_seat: tuple[str, str]) -> None:
    url, _ = one_seat
    before = polar_emulator.request_count()
    with pytest.raises(InvalidInputError) as bare:
        app(polar_emulator, url, tmp_path / "a").acquire_seat(DEMO_KEY)
    assert bare.value.field == "relay_keys" and bare.value.user_message
    assert polar_emulator.request_count() == before


def test_another_relays_key_holds_none_of_this_relays_seats(
        polar_emulator: Emulator, tmp_path: Path, one_seat: tuple[str, str]) -> None:
    url, public = one_seat
    stranger = subprocess.run(
        [CLI, "relay", "keygen", "--org", polar_emulator.organization_id, "--out",
         str(tmp_path / "other.key")],
        env=clean_env(), capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    with pytest.raises(LicenseFailure) as other:
        app(polar_emulator, url, tmp_path / "a", [stranger]).acquire_seat(DEMO_KEY)
    assert other.value.code is Reason.PROTOCOL_ERROR and "no lease" in other.value.detail
    # Given back: the next machine gets the key's one seat at once.
    app(polar_emulator, url, tmp_path / "b", [public], "next").acquire_seat(DEMO_KEY).release()


class Forger:
    """A loopback server that answers every request with a seat's 200 and no lease: no relay
    at all."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        forger = self
        body = json.dumps({"seat": "6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b", "kind": "floating",
                           "expires_at": "2099-01-15T08:00:00Z", "expires_in": 300,
                           "in_use": 1, "size": 1}).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                forger.paths.append(self.path)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_forged_200_holds_no_seat(polar_emulator: Emulator, tmp_path: Path,
                                    one_seat: tuple[str, str]) -> None:
    _, public = one_seat
    forger = Forger()
    try:
        with pytest.raises(LicenseFailure) as forged:
            app(polar_emulator, forger.url, tmp_path / "a", [public]).acquire_seat(DEMO_KEY)
    finally:
        forger.server.shutdown()
    assert forged.value.code is Reason.PROTOCOL_ERROR and "no lease" in forged.value.detail
    # The acquisition, and the release of the seat it named.
    assert forger.paths == ["/v1/seats/acquire", "/v1/seats/release"]


def test_the_relay_gone_a_seat_is_lost_at_its_leases_end_or_its_graces(
        polar_emulator: Emulator, tmp_path: Path) -> None:
    # A seat's life of 4 s (a test's only), so that its end comes soon.
    with relay_serve(polar_emulator, tmp_path / "relay.key", *seats(3),
                     env={"POLAR_LICENSE_RELAY_TEST_ONLY_SEAT_SECONDS": "4"}) as (url, public):
        def holder(machine: str) -> Licensing:
            return app(polar_emulator, url, tmp_path / machine, [public], machine)
        threaded = holder("threaded").acquire_seat(DEMO_KEY)
        driven = holder("driven").acquire_seat(DEMO_KEY, background=False)
        graced = holder("graced").acquire_seat(DEMO_KEY, grace=2)
        # Heartbeats answered while the relay runs (each a third of the 4 s life).
        time.sleep(1.5)
        wait = driven.poll()
        assert wait is not None and 1 < wait <= 1.34, wait
    # The relay is gone: held while each lease runs, lost at its end; nothing of the
    # schedule is the test's (the app's loop sleeps for what the hold says).
    def end(seat: Seat) -> float:
        # Read each time: a heartbeat under way as the relay stopped may still have renewed it.
        return seat.expires_at.timestamp()

    failures: list[Reason] = []
    while True:
        try:
            wait = driven.poll()
        except LicenseUnverified as e:
            failures.append(e.code)
            wait = driven.next_wait
        if wait is None:
            break
        assert driven.held and time.time() < end(driven) + 0.2
        time.sleep(min(wait, 0.25))
    assert Reason.OFFLINE in failures, failures
    for seat in (threaded, driven):
        while time.time() < end(seat):
            assert seat.held or time.time() >= end(seat) - 0.05
            time.sleep(0.05)
        assert seat.state is SeatState.LOST and not seat.held
        lost = seat.lost
        assert lost is not None and lost.code is Reason.SEAT_LOST
        assert isinstance(lost, LicenseUnverified) and lost.user_message
        assert "lease ended" in lost.detail
        with pytest.raises(LicenseUnverified) as again:
            seat.heartbeat()
        assert again.value.code is Reason.SEAT_LOST
        assert seat.poll() is None and seat.next_wait is None
    # The grace: held past the lease's end, lost at the grace's end.
    while time.time() < end(graced) + 1:
        time.sleep(0.05)
    assert graced.held and graced.lost is None
    while time.time() < end(graced) + 2.1:
        time.sleep(0.05)
    assert graced.state is SeatState.LOST
    for seat in (threaded, driven, graced):
        with pytest.raises(LicenseUnverified):
            seat.release()  # the relay is gone: released here, frees there by itself
        assert seat.state is SeatState.RELEASED


def test_a_seat_the_relay_no_longer_holds_is_gone(polar_emulator: Emulator, tmp_path: Path,
                                                  one_seat: tuple[str, str]) -> None:
    url, public = one_seat
    seat = app(polar_emulator, url, tmp_path / "a", [public]).acquire_seat(DEMO_KEY)
    # Given back behind the holder's back (the command line's `seat release`, by its id).
    freed = subprocess.run(
        [CLI, "--base-url", url, "--org", polar_emulator.organization_id, "seat", "release",
         "--seat", seat.id, "--machine", seat.machine],
        env={**clean_env(), "POLAR_LICENSE_KEY": DEMO_KEY, "POLAR_LICENSE_RELAY_KEYS": public},
        capture_output=True, text=True, timeout=60,
    )
    assert freed.returncode == 0, freed.stderr
    # The relay's seat_gone: no longer held here, nothing more sent but a release.
    assert seat.heartbeat() is SeatState.GONE
    assert seat.state is SeatState.GONE and not seat.held and seat.lost is None
    assert seat.poll() is None and seat.next_wait is None
    assert seat.release() is False


class Flaky(LoopbackProxy):
    """The relay behind a proxy that answers heartbeats ``503`` while ``failing``, and counts
    the heartbeats the app sent."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.failing = False
        self.heartbeats = 0

    def on_post(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if handler.path == "/v1/seats/heartbeat":
            self.heartbeats += 1
            if self.failing:
                answer(handler, 503, [("content-type", "application/json")],
                       b'{"error": "server_error", "detail": "down for the test"}')
                return
        super().on_post(handler, body)


def test_the_apps_own_failed_heartbeat_brings_the_threads_retry_forward(
        polar_emulator: Emulator, tmp_path: Path, one_seat: tuple[str, str]) -> None:
    # The relay's default life (300 s): the thread's next heartbeat is 100 s away. The app's
    # own heartbeat fails; the hold wants a retry a second later, and the thread, woken by the
    # heartbeat (the core's Beating::wake), sends it then, not at its planned 100 s.
    url, public = one_seat
    proxy = Flaky(url)
    try:
        seat = app(polar_emulator, proxy.url, tmp_path / "a", [public]).acquire_seat(DEMO_KEY)
        proxy.failing = True
        with pytest.raises(LicenseUnverified):
            seat.heartbeat()
        assert proxy.heartbeats == 1 and seat.held
        proxy.failing = False
        before = seat.expires_at
        deadline = time.monotonic() + 10
        while proxy.heartbeats < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proxy.heartbeats == 2, "the thread did not retry within 10 s"
        while seat.expires_at == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seat.expires_at > before and seat.state is SeatState.HELD
        assert seat.release() is True
    finally:
        proxy.server.shutdown()
