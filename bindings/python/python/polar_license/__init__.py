"""Gate a Python tool's features on a Polar (polar.sh) license key.

The native core of the ``polar-license`` Rust crate: typed answers for every server reply,
local input checks before any request, an offline grace cache that never lets a revoked key
through, shared with the ``polar-license`` command line. ``polar_license.emulator`` is a local
Polar to test against. Reason codes and what to tell the user: docs/answers.md.
"""

from ._errors import (
    InvalidInputError,
    LicenseDenied,
    LicenseError,
    LicenseFailure,
    LicenseUnverified,
    Reason,
)
from ._licensing import Licensing, MetaValue, Seconds
from ._report import (
    Activation,
    CacheStatus,
    CheckReport,
    FeatureAccess,
    Lease,
    License,
    Member,
    Order,
    Perpetual,
    Source,
    Standing,
    Subscription,
    Trial,
    Validation,
)

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "CacheStatus",
    "CheckReport",
    "FeatureAccess",
    "InvalidInputError",
    "Lease",
    "License",
    "LicenseDenied",
    "LicenseError",
    "LicenseFailure",
    "LicenseUnverified",
    "Licensing",
    "Member",
    "MetaValue",
    "Order",
    "Perpetual",
    "Reason",
    "Seconds",
    "Source",
    "Standing",
    "Subscription",
    "Trial",
    "Validation",
]
