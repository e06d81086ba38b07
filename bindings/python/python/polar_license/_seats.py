"""``Seat``: one of a key's floating or CI seats, held through the seller's relay by the core's
hold (issue #76, docs/seats.md). Every rule is the core's: whether an answer holds a seat (its
signed seat lease verified with the relay keys), when to heartbeat and retry, when the seat is
lost. This module only reads the native layer's answers into Python values and exceptions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import Enum

from . import _native
from ._errors import LicenseError, error_from

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any, Optional


class SeatState(str, Enum):
    """Where a seat's hold stands. A ``str`` enum: ``SeatState.HELD == "held"``."""

    HELD = "held"
    """The relay's signed lease runs (or the grace after it): run; the hold heartbeats."""
    LOST = "lost"
    """The lease (and the grace) ended with no renewal from the relay (``seat_lost``): stop
    what the seat licensed; the relay may have given it to another machine."""
    GONE = "gone"
    """The relay said it no longer holds the seat (``seat_gone``), or Polar denied the key at
    a heartbeat: stop, acquire again."""
    RELEASED = "released"
    """Given back: nothing more is sent."""

    def __str__(self) -> str:
        return self.value


def _unwrap(answer: dict[str, Any]) -> Any:
    if "error" in answer:
        raise error_from(answer["error"])
    return answer["ok"]


class Seat:
    """One of a key's seats held by this process, from :meth:`Licensing.acquire_seat`.

    With ``background=True`` (the default) a thread of the library's own heartbeats it as the
    core's hold says (every third of its life, sooner after a failure, never past its end);
    otherwise call :meth:`poll` when :attr:`next_wait` says. The seat is :attr:`held` only
    while the relay's signed lease runs: when the relay stays out of reach, :attr:`state` is
    ``lost`` from the lease's end on (and :attr:`lost` the core's ``seat_lost`` error), even
    before a heartbeat says so. Release it when done (:meth:`release`, or ``with``); a seat not
    released frees at the relay by itself when its life ends. Thread-safe.
    """

    def __init__(self, native: _native.NativeSeat) -> None:
        self._native = native

    def __repr__(self) -> str:
        return f"Seat(id={self.id!r}, state={self.state.value!r})"

    def __enter__(self) -> Seat:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], value: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        try:
            self.release()
        except LicenseError:
            pass  # the seat frees by itself within its life

    def _seat(self) -> dict[str, Any]:
        seat: dict[str, Any] = self._native.seat()
        return seat

    @property
    def id(self) -> str:
        """The seat's id (what the relay's heartbeat and release name)."""
        return str(self._seat()["id"])

    @property
    def ci(self) -> bool:
        """Whether it is a CI seat."""
        return bool(self._seat()["ci"])

    @property
    def machine(self) -> str:
        """The machine binding signed into the seat's lease."""
        return str(self._seat()["machine"])

    @property
    def expires_at(self) -> datetime:
        """When the seat's signed lease ends unless renewed (moved on by each heartbeat)."""
        return datetime.fromtimestamp(self._seat()["expires_at"], tz=timezone.utc)

    @property
    def heartbeat_every(self) -> timedelta:
        """How often the hold heartbeats (a third of the seat's life)."""
        return timedelta(seconds=self._seat()["heartbeat_every"])

    @property
    def in_use(self) -> int:
        """Seats of the key in use, as the relay last said (this one with them)."""
        return int(self._seat()["in_use"])

    @property
    def size(self) -> int:
        """The key's seats, as the relay last said."""
        return int(self._seat()["size"])

    @property
    def state(self) -> SeatState:
        """``held``, ``lost``, ``gone`` or ``released`` now."""
        return SeatState(self._native.state())

    @property
    def held(self) -> bool:
        """``state is SeatState.HELD``: never true past the lease's end (and the grace) with
        no renewal from the relay."""
        return self.state is SeatState.HELD

    @property
    def lost(self) -> Optional[LicenseError]:
        """When the seat is lost now, why: the core's ``seat_lost`` error (a
        :class:`LicenseUnverified`, ``code`` ``Reason.SEAT_LOST``); else ``None``."""
        payload = self._native.lost()
        return None if payload is None else error_from(payload)

    @property
    def next_wait(self) -> Optional[float]:
        """Seconds until the hold wants :meth:`poll` (0 when a heartbeat is due); ``None``
        once the seat is no longer held."""
        return self._native.next_wait()

    def poll(self) -> Optional[float]:
        """For an app that drives the seat itself (``background=False``): does what the hold
        says now (sends the heartbeat when it is due) and returns the seconds until the next
        call, ``None`` once the hold has ended (:attr:`state` says how). Raises the failed
        heartbeat's :class:`LicenseError` (``offline``, ``rate_limited``, ``protocol_error``
        for an answer whose lease does not verify): the seat is kept while its lease runs, and
        the hold's retry is due sooner (call again after :attr:`next_wait`)."""
        wait: Optional[float] = _unwrap(self._native.poll())
        return wait

    def heartbeat(self) -> SeatState:
        """Sends a heartbeat now, due or not (none before a ``429``'s wait, one at a time):
        the state after it (``gone`` when the relay no longer holds the seat). Raises the
        failed heartbeat's :class:`LicenseError` (the seat kept while its lease runs), the
        core's ``seat_lost`` once the seat is lost, :class:`InvalidInputError` once released
        (nothing sent)."""
        return SeatState(_unwrap(self._native.heartbeat()))

    def release(self) -> bool:
        """Stops the heartbeat and gives the seat back (another machine may take it at once):
        whether the relay still held it (``False``, nothing sent, when already released).
        Raises :class:`LicenseError` when the release could not be sent or answered: the seat
        is released here all the same, and frees at the relay when its life ends."""
        return bool(_unwrap(self._native.release()))
