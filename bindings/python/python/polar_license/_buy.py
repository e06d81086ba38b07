"""Buying in the app (issue #80): what ``Licensing.buy`` answers and raises.

The steps are the core's purchase machine (the checkout read until paid, the customer's keys
listed through the session Polar handed back, the key bought asked for until Polar has issued
it); this module only reads its answers into typed objects and exceptions.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ._errors import portal_error_from, unwrap
from ._record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

    from ._report import Activation


class PurchaseError(Exception):
    """A purchase that ended without a key (``Licensing.buy``). ``code`` is the core's name
    for it (docs/interfaces.md, the CLI's ``purchase_error``); ``detail`` its sentence,
    ``user_message`` the sentence with its next step (what to show), ``next_step`` the step
    alone. A step of the customer portal raises :class:`PortalError`; no answer, bad input
    or a protocol failure the :class:`LicenseError` classes."""

    code: str
    detail: str
    user_message: str
    next_step: str

    def __init__(self, code: str, detail: str, *, user_message: str, next_step: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.user_message = user_message
        self.next_step = next_step

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail={self.detail!r})"


class KeyIssuing(PurchaseError):
    """``key_issuing``: paid, but Polar was still issuing the key two minutes after the
    purchase (its string answers 404 for a while after paying): try again in a minute. The key
    is not wrong; it is not there yet."""


class CheckoutExpired(PurchaseError):
    """``checkout_expired``: the checkout expired (24 hours) before it was paid."""


class CheckoutFailed(PurchaseError):
    """``checkout_failed``: the checkout failed for good."""


class CheckoutNotFound(PurchaseError):
    """``checkout_not_found``: no checkout (or checkout link) has this client secret."""


class NotPaid(PurchaseError):
    """``not_paid``: still not paid after 30 minutes: the buyer may finish paying and buy again."""


_PURCHASE_ERRORS: dict[str, type[PurchaseError]] = {
    "key_issuing": KeyIssuing,
    "checkout_expired": CheckoutExpired,
    "checkout_failed": CheckoutFailed,
    "checkout_not_found": CheckoutNotFound,
    "not_paid": NotPaid,
}


def purchase_answer(answer: dict[str, Any]) -> Any:
    """The ``ok`` value of a purchase's native answer, or its failure raised."""
    if "purchase_error" in answer:
        e = answer["purchase_error"]
        raise _PURCHASE_ERRORS.get(e["code"], PurchaseError)(
            e["code"], e["detail"], user_message=e["user_message"], next_step=e["next_step"])
    if "portal_error" in answer:
        raise portal_error_from(answer["portal_error"])
    return unwrap(answer)


@record
class Purchase:
    """The key bought, activated here with no key typed (``Licensing.buy``); remembered when
    remembering is on. ``repr`` shows the key redacted only."""

    key_id: str
    """The key record's id."""
    display_key: str
    """``****-4C5B6A``: the key bought, redacted."""
    activation: Activation
    """Its activation on this machine."""


@record
class PurchaseSignIn:
    """Paid, but Polar handed back no customer session (the buyer's email matched an existing
    customer): Polar is emailing a sign-in code to ``email``. Show ``user_message``, then
    ``Licensing.sign_in(code)`` and ``Licensing.buy_signed_in(this, label)``."""

    checkout_id: str
    email: Optional[str]
    """The checkout's address, where the code goes."""
    created_at: Optional[datetime]
    """When the checkout was made: the key bought is no older."""
    benefit_ids: tuple[str, ...]
    """The license-key benefits of the product bought."""
    user_message: str
    """The core's sentence and next step."""
    next_step: str

    @classmethod
    def _of(cls, d: dict[str, Any]) -> PurchaseSignIn:
        at = d["created_at"]
        return cls(d["checkout_id"], d["email"],
                   None if at is None else datetime.fromtimestamp(at, tz=timezone.utc),
                   tuple(d["benefit_ids"]), d["user_message"], d["next_step"])
