"""The reason codes and the exceptions every call raises (docs/answers.md)."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from ._record import record

# Annotations only (``typing`` at run time is a large part of a cold import).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional


class Reason(str, Enum):
    """Why an answer does not license: the contract's stable reason codes.

    A ``str`` enum: ``Reason.NOT_FOUND == "not_found"``. The members are written here so that
    type checkers see them (tests/test_messages.py holds them to the core's table, src/reason.rs,
    in its order); ``reason_class``, ``user_message`` and ``next_step`` are the core's, read from
    the extension at import.
    """

    NOT_FOUND = "not_found"
    INACTIVE = "inactive"
    EXPIRED = "expired"
    CONDITIONS_MISMATCH = "conditions_mismatch"
    BENEFIT_MISMATCH = "benefit_mismatch"
    CUSTOMER_MISMATCH = "customer_mismatch"
    USAGE_EXHAUSTED = "usage_exhausted"
    ACTIVATION_LIMIT = "activation_limit"
    ACTIVATIONS_NOT_SUPPORTED = "activations_not_supported"
    OFFLINE = "offline"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    GRACE_EXPIRED = "grace_expired"
    CLOCK_ROLLBACK = "clock_rollback"
    PROTOCOL_ERROR = "protocol_error"
    INVALID_INPUT = "invalid_input"
    CACHE_ERROR = "cache_error"
    LOAD_ERROR = "load_error"
    NOT_YET_VERIFIED = "not_yet_verified"
    REPLAYED = "replayed"
    SEATS_FULL = "seats_full"
    CREDITS_EXHAUSTED = "credits_exhausted"
    SEAT_LOST = "seat_lost"

    @property
    def reason_class(self) -> str:
        """``denied``, ``unverified`` or ``error``."""
        return _CLASSES[self.value]

    @property
    def user_message(self) -> str:
        """The core's one sentence for this reason, to show the person using the tool."""
        return _WORDS[self.value][0]

    @property
    def next_step(self) -> str:
        """The core's one next step for this reason."""
        return _WORDS[self.value][1]

    def __str__(self) -> str:
        return self.value


def _table() -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    # The core's table (src/reason.rs, src/message.rs), read from the extension at import.
    from . import _native

    words = {code: (said, step) for code, said, step in _native.REASON_MESSAGES}
    return dict(_native.REASONS), words


_CLASSES, _WORDS = _table()


class StopKind(str, Enum):
    """Why a key stopped (issue #68): a denial's detail from the seller's relay, as Polar's
    webhooks told it. A ``str`` enum: ``StopKind.PAUSED == "paused"``."""

    PAUSED = "paused"
    """The subscription is paused (``until``: when it resumes, if Polar said)."""
    CANCELED = "canceled"
    """The subscription was canceled and has ended (``at``: when it ended)."""
    SEAT_REVOKED = "seat_revoked"
    """The customer's team removed this member's seat."""
    REFUNDED = "refunded"
    """The order was refunded and its benefits revoked."""
    ROTATED = "rotated"
    """This key string was replaced by a new one (the new one is in the customer portal)."""
    PAST_DUE = "past_due"
    """A payment failed and the grace period ended (``at``: when it went past due)."""

    def __str__(self) -> str:
        return self.value


@record
class Stopped:
    """Why a key stopped: the kind, and its dates when known. An addition beside the denial's
    ``code``, which stays what Polar's answer gives; the denial stays re-checkable (a resumed
    subscription licenses again at the next check)."""

    kind: StopKind
    at: Optional[datetime]
    """When it happened (paused, ended, removed, refunded, rotated, went past due)."""
    until: Optional[datetime]
    """For ``paused``: when the subscription resumes, if Polar said."""

    @classmethod
    def _of(cls, d: Optional[dict[str, Any]]) -> Optional[Stopped]:
        if d is None:
            return None
        at, until = d["at"], d["until"]
        return cls(StopKind(d["kind"]),
                   None if at is None else datetime.fromtimestamp(at, tz=timezone.utc),
                   None if until is None else datetime.fromtimestamp(until, tz=timezone.utc))


class LicenseError(Exception):
    """No license: Polar's denial, no trustworthy answer, or an error.

    Catch this for every failure, or a subclass by class: :class:`LicenseDenied` (Polar said
    no), :class:`LicenseUnverified` (Polar could not be asked: offline, rate limited, a 5xx)
    or :class:`LicenseFailure` (not Polar's answer, bad input, the cache). ``code`` is the
    contract's reason code; ``user_message`` a sentence for the person using the tool;
    ``detail`` Polar's own text for a denial, else ours (for logs). Never holds the key.
    """

    code: Reason
    user_message: str
    next_step: str
    """The one next step of ``user_message`` alone (the core's), for a screen that shows the
    two apart."""
    detail: str
    field: Optional[str]
    status: Optional[int]
    retry_after: Optional[int]
    hint: Optional[str]
    previously_valid: bool
    remaining_usages: Optional[int]
    stopped: Optional[Stopped]
    """For a denial through the seller's relay: why the key stopped (issue #68), else
    ``None``."""
    balance: Optional[float]
    """For ``credits_exhausted`` (``Licensing.record_usage``): the meter's balance the relay
    knows (at or below zero), else ``None``."""
    usage_id: Optional[str]
    """For a usage report that failed (``Licensing.record_usage``): the report's idempotency
    id. Send it again later with this id and it counts once. Else ``None``."""
    usage_code: Optional[str]
    """For a usage report the relay's backlog holds: the core's code for it,
    ``usage_backlog`` (as every face gives it; ``code`` stays ``rate_limited``), else
    ``None``."""

    def __init__(
        self,
        code: Reason,
        detail: str,
        *,
        user_message: str = "",
        next_step: str = "",
        field: Optional[str] = None,
        status: Optional[int] = None,
        retry_after: Optional[int] = None,
        hint: Optional[str] = None,
        previously_valid: bool = False,
        remaining_usages: Optional[int] = None,
        stopped: Optional[Stopped] = None,
        balance: Optional[float] = None,
        usage_id: Optional[str] = None,
        usage_code: Optional[str] = None,
    ) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail
        self.user_message = user_message
        self.next_step = next_step
        self.field = field
        self.status = status
        self.retry_after = retry_after
        self.hint = hint
        self.previously_valid = previously_valid
        self.remaining_usages = remaining_usages
        self.stopped = stopped
        self.balance = balance
        self.usage_id = usage_id
        self.usage_code = usage_code

    @property
    def reason_class(self) -> str:
        """``denied``, ``unverified`` or ``error``."""
        return self.code.reason_class

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.value!r}, detail={self.detail!r})"


class LicenseDenied(LicenseError):
    """Polar said no (``not_found``, ``inactive``, ``expired``, ``activation_limit``, …)."""


class LicenseUnverified(LicenseError):
    """No trustworthy answer this time (``offline``, ``rate_limited``, ``server_error``, …)."""


class LicenseFailure(LicenseError):
    """No answer of Polar's (``protocol_error``), bad input, or the cache (``cache_error``)."""


class InvalidInputError(LicenseFailure, ValueError):
    """``invalid_input``: refused before any request; ``field`` names the culprit."""


class UsageBacklog(LicenseUnverified):
    """``usage_backlog`` (its ``usage_code``, the core's code every face gives) from
    ``Licensing.record_usage``: too many reports wait at the seller's relay, even after the core
    sent it again. Send it again after ``retry_after`` seconds with the same ``usage_id``: it
    counts once. Its ``code`` stays ``Reason.RATE_LIMITED``, as first shipped (an alias)."""


class SeatsFull(LicenseDenied):
    """``seats_full`` from ``Licensing.acquire_seat``: every seat of the key is in use. ``in_use``
    and ``size`` are the relay's count, ``frees_at`` when the soonest seat frees (if the relay
    said), ``retry_after`` the seconds to wait."""

    in_use: int
    size: int
    frees_at: Optional[datetime]

    def __init__(self, code: Reason, detail: str, *, in_use: int = 0, size: int = 0,
                 frees_at: Optional[datetime] = None, **rest: Any) -> None:
        super().__init__(code, detail, **rest)
        self.in_use = in_use
        self.size = size
        self.frees_at = frees_at


def error_from(payload: dict[str, Any]) -> LicenseError:
    """The exception for the native layer's error (a dict)."""
    code = Reason(payload["code"])
    seats = payload.get("seats")
    if seats is not None:
        frees_at = seats["frees_at"]
        return SeatsFull(
            code, payload["detail"], in_use=seats["in_use"], size=seats["size"],
            frees_at=None if frees_at is None else datetime.fromtimestamp(frees_at, tz=timezone.utc),
            user_message=payload["user_message"], next_step=payload.get("next_step", ""),
            status=payload.get("status"),
            retry_after=payload.get("retry_after"), hint=payload.get("hint"),
        )
    cls: type[LicenseError]
    if code is Reason.INVALID_INPUT:
        cls = InvalidInputError
    elif payload.get("usage_code") == "usage_backlog" or payload.get("usage_backlog"):
        cls = UsageBacklog
    elif code.reason_class == "denied":
        cls = LicenseDenied
    elif code.reason_class == "unverified":
        cls = LicenseUnverified
    else:
        cls = LicenseFailure
    return cls(
        code,
        payload["detail"],
        user_message=payload["user_message"],
        next_step=payload.get("next_step", ""),
        field=payload.get("field"),
        status=payload.get("status"),
        retry_after=payload.get("retry_after"),
        hint=payload.get("hint"),
        previously_valid=bool(payload.get("previously_valid")),
        remaining_usages=payload.get("remaining_usages"),
        stopped=Stopped._of(payload.get("stopped")),
        balance=payload.get("balance"),
        usage_id=payload.get("id"),
        usage_code=payload.get("usage_code"),
    )


class PortalError(Exception):
    """A step of the customer portal (``sign_in``, ``devices``) that Polar refused.

    ``kind`` is the contract's ``portal_error`` name (docs/interfaces.md §2, the CLI's): a
    subclass for each. ``code`` is the reason code the contract gives it (``not_found`` for
    :class:`KeyNotFound`, ``rate_limited``, ``invalid_input`` for :class:`NotSignedIn` and
    :class:`CustomerSelectionRequired`), else ``None`` (no reason code: a wrong code, an
    expired session, device management off, another refusal). ``detail`` is the core's
    sentence. Failures that are no portal answer (bad input, no answer, not Polar's) raise
    the :class:`LicenseError` classes every call raises (:class:`InvalidInputError`,
    :class:`LicenseUnverified`, :class:`LicenseFailure`). Never holds a key or a session.
    """

    kind: str
    code: Optional[Reason]
    detail: str
    field: Optional[str]
    retry_after: Optional[int]
    status: Optional[int]
    error: Optional[str]
    customers: list[tuple[str, Optional[str]]]

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        code: Optional[Reason] = None,
        field: Optional[str] = None,
        retry_after: Optional[int] = None,
        status: Optional[int] = None,
        error: Optional[str] = None,
        customers: Optional[list[tuple[str, Optional[str]]]] = None,
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.code = code
        self.detail = detail
        self.field = field
        self.retry_after = retry_after
        self.status = status
        self.error = error
        self.customers = [] if customers is None else customers

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, detail={self.detail!r})"


class SignInCodeInvalid(PortalError):
    """``code_invalid_or_expired``: the code is wrong, used, or older than 30 minutes: ask
    for a new one (``request_sign_in_code``)."""


class SessionExpired(PortalError):
    """``session_expired``: the session's hour is over (it is forgotten): sign in again."""


class NotSignedIn(PortalError):
    """``not_signed_in`` (``code`` ``invalid_input``, ``field`` ``session``): no session is
    remembered here; nothing was sent. Sign in first."""


class CustomerSelectionRequired(PortalError):
    """``customer_selection_required`` (``invalid_input``, ``field`` ``customer_id``): several
    customers have this email; ask again naming one of ``customers`` (``(id, name)``)."""


class DeviceManagementOff(PortalError):
    """``device_management_off``: the portal lists no device although this machine holds one:
    the seller must enable "customers can manage activations" (``enable_customer_admin``) on
    the product's license-key benefit. ``free_device`` still works."""


class KeyNotFound(PortalError):
    """``key_not_found`` (``code`` ``not_found``): the key is not among the signed-in
    customer's keys."""


class PortalRateLimited(PortalError):
    """``rate_limited``: too many tries; ``retry_after`` is the wait in seconds (Polar's code
    routes allow 6 a minute and 12 an hour per address, then block 900 s)."""


class PortalRefused(PortalError):
    """``refused``: another refusal of Polar's (``status``, ``error``)."""


_PORTAL_ERRORS: dict[str, type[PortalError]] = {
    "code_invalid_or_expired": SignInCodeInvalid,
    "session_expired": SessionExpired,
    "not_signed_in": NotSignedIn,
    "customer_selection_required": CustomerSelectionRequired,
    "device_management_off": DeviceManagementOff,
    "key_not_found": KeyNotFound,
    "rate_limited": PortalRateLimited,
    "refused": PortalRefused,
}


def portal_error_from(payload: dict[str, Any]) -> PortalError:
    """The exception for the native layer's portal failure (a dict)."""
    kind: str = payload["portal_error"]
    code = payload.get("code")
    customers: list[dict[str, Any]] = payload.get("customers") or []
    return _PORTAL_ERRORS.get(kind, PortalError)(
        kind,
        payload["detail"],
        code=None if code is None else Reason(code),
        field=payload.get("field"),
        retry_after=payload.get("retry_after"),
        status=payload.get("status"),
        error=payload.get("error"),
        customers=[(c["id"], c["name"]) for c in customers],
    )


def unwrap(answer: dict[str, Any]) -> Any:
    """The ``ok`` value of a native answer, or its ``error`` (or ``portal_error``) raised."""
    if "error" in answer:
        raise error_from(answer["error"])
    if "portal_error" in answer:
        raise portal_error_from(answer["portal_error"])
    return answer["ok"]
