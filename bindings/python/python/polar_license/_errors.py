"""The reason codes and the exceptions every call raises (docs/answers.md)."""

from __future__ import annotations

from enum import Enum

# Annotations only (``typing`` at run time is a large part of a cold import).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional


class Reason(str, Enum):
    """Why an answer does not license: the contract's stable reason codes.

    A ``str`` enum: ``Reason.NOT_FOUND == "not_found"``.
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

    @property
    def reason_class(self) -> str:
        """``denied``, ``unverified`` or ``error``."""
        return _CLASSES[self.value]

    def __str__(self) -> str:
        return self.value


def _classes() -> dict[str, str]:
    from . import _native

    return dict(_native.REASONS)


_CLASSES = _classes()


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
    detail: str
    field: Optional[str]
    status: Optional[int]
    retry_after: Optional[int]
    hint: Optional[str]
    previously_valid: bool
    remaining_usages: Optional[int]

    def __init__(
        self,
        code: Reason,
        detail: str,
        *,
        user_message: str = "",
        field: Optional[str] = None,
        status: Optional[int] = None,
        retry_after: Optional[int] = None,
        hint: Optional[str] = None,
        previously_valid: bool = False,
        remaining_usages: Optional[int] = None,
    ) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail
        self.user_message = user_message
        self.field = field
        self.status = status
        self.retry_after = retry_after
        self.hint = hint
        self.previously_valid = previously_valid
        self.remaining_usages = remaining_usages

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


def error_from(payload: dict[str, Any]) -> LicenseError:
    """The exception for the native layer's error (a dict)."""
    code = Reason(payload["code"])
    cls: type[LicenseError]
    if code is Reason.INVALID_INPUT:
        cls = InvalidInputError
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
        field=payload.get("field"),
        status=payload.get("status"),
        retry_after=payload.get("retry_after"),
        hint=payload.get("hint"),
        previously_valid=bool(payload.get("previously_valid")),
        remaining_usages=payload.get("remaining_usages"),
    )
