"""The seller's relay as a process for the suites that need one: the CLI's ``relay keygen``
then ``relay serve`` in front of an emulator (POLAR_LICENSE_CLI, which scripts/test-python.sh
builds), on a free port, stopped on the way out."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Generator
from pathlib import Path
from typing import Optional

from polar_license.emulator import Emulator

CLI = os.environ.get("POLAR_LICENSE_CLI", "")
TOKEN = "polar_oat_emulator_demo_0123456789abcdef"  # the demo seed's organization token


def clean_env() -> dict[str, str]:
    """The environment without the POLAR_ variables (the command reads none of the tests')."""
    return {k: v for k, v in os.environ.items() if not k.startswith("POLAR_")}


@contextlib.contextmanager
def relay_serve(polar: Emulator, key_file: Path, *flags: str, token: str = TOKEN,
                env: Optional[dict[str, str]] = None) -> Generator[tuple[str, str], None, None]:
    """``relay serve`` in front of ``polar`` with a signing key made at ``key_file``, Polar's
    ``token`` and the extra ``flags`` (and ``env`` added to its environment): its URL and its
    public key (``KID=k4.public.…``)."""
    public = subprocess.run(
        [CLI, "relay", "keygen", "--org", polar.organization_id, "--out", str(key_file)],
        env=clean_env(), capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    serve = subprocess.Popen(
        [CLI, "relay", "serve", "--org", polar.organization_id, "--signing-key", str(key_file),
         "--base-url", polar.url, "--access-token", token, "--port", "0", *flags],
        env={**clean_env(), **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline().strip()
        assert first.startswith("listening on "), first
        yield first.removeprefix("listening on "), public
    finally:
        serve.terminate()
        serve.wait(timeout=30)
