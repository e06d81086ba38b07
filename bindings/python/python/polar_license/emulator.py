"""The local Polar emulator, in process: test every answer of Polar's in your own suite.

The emulator crate compiled into the extension, serving Polar's license-key routes over
loopback on its own threads::

    from polar_license import Licensing
    from polar_license.emulator import DEMO_KEY, Emulator

    with Emulator() as polar:
        licensing = Licensing(polar.organization_id, base_url=polar.url, cache_dir=tmp)
        assert licensing.check(DEMO_KEY).licensed
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from types import FrameType, TracebackType
from typing import Any, Optional, Union

from . import _native

DEMO_ORGANIZATION_ID: str = _native.DEMO_ORGANIZATION_ID
DEMO_BENEFIT_ID: str = _native.DEMO_BENEFIT_ID
DEMO_CUSTOMER_ID: str = _native.DEMO_CUSTOMER_ID
DEMO_KEY: str = _native.DEMO_KEY
"""The demo seed's good key (3 activations, no expiry)."""
DEMO_KEY_REVOKED: str = _native.DEMO_KEY_REVOKED
DEMO_KEY_DISABLED: str = _native.DEMO_KEY_DISABLED
DEMO_KEY_EXPIRED: str = _native.DEMO_KEY_EXPIRED
DEMO_KEY_USAGE: str = _native.DEMO_KEY_USAGE
DEMO_KEY_NO_ACTIVATIONS: str = _native.DEMO_KEY_NO_ACTIVATIONS

Seed = Union[Mapping[str, Any], str, "os.PathLike[str]", None]
"""A seed: ``None`` (the demo seed), a mapping (the seed file's JSON), or a seed file's path."""


class Emulator:
    """A local Polar on ``127.0.0.1`` and a free port, started at once; a context manager.

    :param seed: ``None`` for the demo seed (``DEMO_KEY`` and friends), a mapping in the seed
        file's format (docs/interfaces.md), or the path of a seed file.
    :param port: the port on 127.0.0.1 (default 0: a free one).
    :param api_version: the Polar API version answered (``"2026-04"``, ``"2026-10"`` or
        ``"2027-01"``, whose answers add a key's ``member``, ``subscription`` and ``order``);
        default: Polar's current one.
    :param rate_limit: Polar's rate limits on (3 calls a second per address on the license
        routes; 6 a minute and 12 an hour on the sign-in code routes, then 900 s blocked).
    """

    def __init__(self, seed: Seed = None, *, port: int = 0,
                 api_version: Optional[str] = None, rate_limit: bool = False) -> None:
        text: Optional[str]
        if seed is None:
            text = None
        elif isinstance(seed, Mapping):
            text = json.dumps(seed)
        else:
            with open(os.fspath(seed), encoding="utf-8") as f:
                text = f.read()
        self._native = _native.NativeEmulator(text, port, api_version, rate_limit)

    @property
    def url(self) -> str:
        """The base URL to hand ``Licensing(base_url=…)``."""
        return self._native.url

    @property
    def organization_id(self) -> str:
        """The seeded organization."""
        return self._native.organization_id

    @property
    def running(self) -> bool:
        """``True`` until :meth:`stop`."""
        return self._native.running

    def set_fault(self, fault: Optional[Mapping[str, Any]]) -> None:
        """Answers every license request with a fault until cleared (``None``):
        ``{"kind": "status", "status": 503, "body": "down"}``, ``{"kind": "rate_limited",
        "retry_after": 30}``, ``{"kind": "hang"}``, ``{"kind": "delay", "ms": 500}``,
        ``{"kind": "malformed"}``, ``{"kind": "close_immediately"}``, …"""
        self._native.set_fault(None if fault is None else json.dumps(fault))

    def update_key(self, key: str, **changes: Any) -> bool:
        """A seller-side change to a key (``status="revoked"``, ``usage=3``,
        ``limit_activations=1``, ``expires_at="2020-01-01T00:00:00Z"``); ``False`` when no
        such key."""
        return self._native.update_key(key, json.dumps(changes))

    def request_count(self) -> int:
        """License-route requests answered so far."""
        return self._native.request_count()

    def activations(self, key: str) -> list[dict[str, Any]]:
        """The key's activations, as Polar lists them."""
        value: list[dict[str, Any]] = json.loads(self._native.activations(key))
        return value

    def sign_in_codes(self) -> list[dict[str, Any]]:
        """The sign-in codes Polar would have emailed, not yet used or expired, oldest first:
        ``{"code", "email", "customer_id", "organization_id", "expires_at"}`` each (what
        ``GET /__emulator/customer-session/codes`` answers)."""
        value: list[dict[str, Any]] = json.loads(self._native.customer_session_codes())
        return value

    def rotate_key(self, key: str) -> Optional[str]:
        """Rotates ``key`` as the seller (or the customer in the portal) does with Polar's
        rotate: the record's id, limits and activations kept, the old string answers 404 from
        now on. The new string; ``None`` when no such key."""
        return self._native.rotate_key(key)

    def set_clock_offset(self, seconds: int) -> None:
        """Moves Polar's clock ``seconds`` from the real one (``0``: back to it): expiries,
        customer sessions and codes, trials (``POST /__emulator/clock``)."""
        self._native.set_clock_offset(seconds)

    def stop(self) -> None:
        """Stops serving (idempotent): later requests are refused (``offline``)."""
        self._native.stop()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Emulator(url={self.url!r}, {state})"


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m polar_license.emulator [--port N] [--seed FILE]``: serves until killed; the
    first line printed is ``listening on http://127.0.0.1:PORT``, as the command line's."""
    import argparse
    import signal
    import threading

    parser = argparse.ArgumentParser(prog="python -m polar_license.emulator",
                                     description="A local Polar (the demo seed by default).")
    parser.add_argument("--port", type=int, default=0, help="the port (default: a free one)")
    parser.add_argument("--seed", help="a seed file (default: the demo seed)")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_term(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    with Emulator(args.seed, port=args.port) as polar:
        print(f"listening on {polar.url}", flush=True)
        print(f"organization {polar.organization_id}, key {DEMO_KEY}" if args.seed is None
              else f"organization {polar.organization_id}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
