"""Gate a Python tool's features on a Polar (polar.sh) license key.

The native core of the ``polar-license`` Rust crate: typed answers for every server reply,
local input checks before any request, an offline grace cache that never lets a revoked key
through, shared with the ``polar-license`` command line. ``polar_license.emulator`` is a local
Polar to test against. Reason codes and what to tell the user: docs/answers.md.
"""

from ._errors import (
    CustomerSelectionRequired,
    DeviceManagementOff,
    InvalidInputError,
    KeyNotFound,
    LicenseDenied,
    LicenseError,
    LicenseFailure,
    LicenseUnverified,
    NotSignedIn,
    PortalError,
    PortalRateLimited,
    PortalRefused,
    Reason,
    SeatsFull,
    SessionExpired,
    SignInCodeInvalid,
    StopKind,
    Stopped,
    UsageBacklog,
)
from ._buy import (
    CheckoutExpired,
    CheckoutFailed,
    CheckoutNotFound,
    KeyIssuing,
    NotPaid,
    Purchase,
    PurchaseError,
    PurchaseSignIn,
)
from ._licensing import Licensing
from ._seats import Seat, SeatState
from ._report import (
    Activation,
    CacheStatus,
    CheckReport,
    Deactivated,
    Device,
    EntitlementState,
    FeatureAccess,
    KeyDevices,
    Lease,
    License,
    Member,
    Order,
    Perpetual,
    RecoverableKey,
    RotatedKey,
    Source,
    Standing,
    Subscription,
    Trial,
    UsageRecorded,
    Validation,
)

__version__ = "0.1.0"

# ``MetaValue`` and ``Seconds`` are ``typing`` aliases, made at their first use at run time
# (``typing`` is a large part of a cold import): type checkers read this block, Python the
# ``__getattr__`` below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._licensing import MetaValue, Seconds
else:

    def __getattr__(name):
        if name in ("MetaValue", "Seconds"):
            from . import _licensing

            return getattr(_licensing, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Activation",
    "CacheStatus",
    "CheckReport",
    "CheckoutExpired",
    "CheckoutFailed",
    "CheckoutNotFound",
    "CustomerSelectionRequired",
    "Deactivated",
    "Device",
    "DeviceManagementOff",
    "EntitlementState",
    "FeatureAccess",
    "InvalidInputError",
    "KeyDevices",
    "KeyIssuing",
    "KeyNotFound",
    "Lease",
    "License",
    "LicenseDenied",
    "LicenseError",
    "LicenseFailure",
    "LicenseUnverified",
    "Licensing",
    "Member",
    "MetaValue",
    "NotPaid",
    "NotSignedIn",
    "Order",
    "Perpetual",
    "PortalError",
    "PortalRateLimited",
    "PortalRefused",
    "Purchase",
    "PurchaseError",
    "PurchaseSignIn",
    "Reason",
    "RecoverableKey",
    "RotatedKey",
    "Seat",
    "SeatState",
    "SeatsFull",
    "Seconds",
    "SessionExpired",
    "SignInCodeInvalid",
    "Source",
    "Standing",
    "StopKind",
    "Stopped",
    "Subscription",
    "Trial",
    "UsageBacklog",
    "UsageRecorded",
    "Validation",
]
