"""Issue #77 "faces marshal, the core speaks": the reason table and every user message are the
core's, read from the extension; a sentence composed in this package fails here."""

from __future__ import annotations

from pathlib import Path

from polar_license import LicenseDenied, Licensing, Reason, _native
from polar_license.emulator import DEMO_KEY_EXPIRED, Emulator


def test_the_reason_table_is_the_extensions() -> None:
    # Every member is a row of the core's table, in its order, and nothing else.
    assert [r.value for r in Reason] == [code for code, _ in _native.REASONS]
    words = {code: (said, step) for code, said, step in _native.REASON_MESSAGES}
    for r in Reason:
        assert (r.user_message, r.next_step) == words[r.value]
        assert r.user_message.endswith(".") and r.next_step.endswith(".")
    assert Reason.SEATS_FULL.user_message == "Every seat of this license is in use."
    assert Reason("seats_full") is Reason.SEATS_FULL and str(Reason.OFFLINE) == "offline"


def test_a_denial_says_the_cores_sentence_and_next_step(polar_emulator: Emulator,
                                                        tmp_path: Path) -> None:
    licensing = Licensing(polar_emulator.organization_id, base_url=polar_emulator.url,
                          cache_dir=tmp_path, machine_binding="test-machine")
    report = licensing.check(DEMO_KEY_EXPIRED)
    error = report.error
    assert isinstance(error, LicenseDenied) and error.code is Reason.EXPIRED
    # The words are the core's for the reason: its sentence, then its step (one line).
    step = Reason.EXPIRED.next_step
    assert error.next_step == step
    assert report.user_message == (Reason.EXPIRED.user_message[:-1] + ": "
                                   + step[0].lower() + step[1:])
