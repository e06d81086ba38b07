"""What the calls answer: typed, immutable, keys redacted."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from enum import Enum

from ._errors import Reason, error_from
from ._record import field, record

# Names for annotations only: importing ``typing`` at run time costs more than the rest of the
# package (docs/performance.md). Type checkers read this block; Python skips it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

    from typing import Union

    from . import _native
    from ._errors import LicenseError, Stopped

    EntitlementValue = Union[str, int, float, bool]


class Standing(str, Enum):
    """What the cache says of a key now (``Licensing.status``), the same word on every face."""

    NONE = "none"
    """Nothing stored that can be trusted: a check asks Polar."""
    DENIED = "denied"
    """Polar's last answer was a denial: no cached grant."""
    LICENSED = "licensed"
    """A check would license from the cache now."""
    LAPSED = "lapsed"
    """A good verdict is stored but can no longer license from the cache."""

    def __str__(self) -> str:
        return self.value


class Source(str, Enum):
    """Where a licensed answer came from."""

    ONLINE = "online"
    CACHE = "cache"

    def __str__(self) -> str:
        return self.value


def _time(secs: Optional[int]) -> Optional[datetime]:
    return None if secs is None else datetime.fromtimestamp(secs, tz=timezone.utc)


def _span(secs: Optional[float]) -> Optional[timedelta]:
    return None if secs is None else timedelta(seconds=secs)


@record
class Lease:
    """Signed mode: the relay's lease the cache holds, verified (docs/signed-mode.md)."""

    kid: str
    not_before: datetime
    expires_at: datetime

    @classmethod
    def _of(cls, d: Optional[dict[str, Any]]) -> Optional[Lease]:
        if d is None:
            return None
        return cls(d["kid"], datetime.fromtimestamp(d["not_before"], tz=timezone.utc),
                   datetime.fromtimestamp(d["expires_at"], tz=timezone.utc))


@record
class Member:
    """The seat holder a key is assigned to (Polar API 2027-01 and later)."""

    id: str
    email: Optional[str]
    external_id: Optional[str]


@record
class Subscription:
    """The subscription a key was granted through (2027-01 and later)."""

    id: str
    status: str
    current_period_start: Optional[datetime]
    current_period_end: Optional[datetime]
    cancel_at_period_end: bool
    ends_at: Optional[datetime]


@record
class Order:
    """The order a key was granted through (2027-01 and later)."""

    id: str
    created_at: Optional[datetime]
    status: str
    paid: bool


@record
class License:
    """A license as Polar returned it; the key only in Polar's redacted form."""

    id: str
    display_key: str
    """``****-4C5B6A``: log this, never the key."""
    status: str
    """``granted``, ``revoked`` or ``disabled``."""
    benefit_id: str
    customer_id: str
    customer_email: Optional[str]
    expires_at: Optional[datetime]
    usage: int
    limit_usage: Optional[int]
    limit_activations: Optional[int]
    validations: int
    activation_id: Optional[str]
    member: Optional[Member] = None
    subscription: Optional[Subscription] = None
    order: Optional[Order] = None

    @classmethod
    def _of(cls, d: dict[str, Any]) -> License:
        m, s, o = d["member"], d["subscription"], d["order"]
        return cls(
            id=d["id"],
            display_key=d["display_key"],
            status=d["status"],
            benefit_id=d["benefit_id"],
            customer_id=d["customer_id"],
            customer_email=d["customer_email"],
            expires_at=_time(d["expires_at"]),
            usage=d["usage"],
            limit_usage=d["limit_usage"],
            limit_activations=d["limit_activations"],
            validations=d["validations"],
            activation_id=d["activation_id"],
            member=None if m is None else Member(m["id"], m["email"], m["external_id"]),
            subscription=None if s is None else Subscription(
                s["id"], s["status"], _time(s["current_period_start"]),
                _time(s["current_period_end"]), s["cancel_at_period_end"], _time(s["ends_at"])),
            order=None if o is None else Order(
                o["id"], _time(o["created_at"]), o["status"], o["paid"]),
        )


@record
class Perpetual:
    """Perpetual fallback (docs/perpetual.md), when the app stated its build's release date."""

    released: date
    paid_through: Optional[datetime]
    fallback: bool
    """``True`` when the answer licenses only because this build is older than the key's end."""


@record
class Trial:
    """A trial (docs/trials.md): the local trial with no key, or a key from a trial product."""

    local: bool
    state: str
    """``active``, ``ended`` or ``refused``."""
    started_at: Optional[datetime]
    ends_at: Optional[datetime]
    days_left: int


@record
class FeatureAccess:
    """May this copy use a feature (the ``entitlements`` map)? The core's answer."""

    feature: str
    granted: bool
    why: str
    """``granted``, ``license_not_valid``, ``not_granted_by_benefit``, ``unknown_feature`` or
    ``usage_exhausted``."""
    license_reason: Optional[Reason]
    remaining_usage: Optional[int]
    source: Optional[Source]

    def __bool__(self) -> bool:
        return self.granted

    @classmethod
    def _of(cls, d: dict[str, Any]) -> FeatureAccess:
        lr, src = d["license_reason"], d["source"]
        return cls(d["feature"], d["granted"], d["why"],
                   None if lr is None else Reason(lr), d["remaining_usage"],
                   None if src is None else Source(src))


@record
class EntitlementState:
    """What a check's answer says of one entitlement (``Licensing.entitlement_state``): the
    core's state and, when there is something to tell the person, the core's words."""

    name: str
    state: str
    """``granted``; ``absent`` (the relay signed the key's values and this one is not among
    them); ``unknown`` (the lease carries no values yet); ``unsigned`` (the answer stands on
    no signed lease: values need the seller's relay); ``not_licensed`` (the check did not
    license: its ``user_message`` says why)."""
    value: Optional[EntitlementValue]
    """The value when ``granted``, else ``None``."""
    user_message: Optional[str]
    """For ``absent``, ``unknown`` and ``unsigned``: the core's sentence and next step as one
    line, to show as it is (the same words the command line and Tauri show); else ``None``."""
    next_step: Optional[str]
    """The next step of ``user_message`` alone."""

    def __bool__(self) -> bool:
        return self.state == "granted"

    @classmethod
    def _of(cls, d: dict[str, Any]) -> EntitlementState:
        return cls(d["name"], d["state"], d["value"], d["user_message"], d["next_step"])


@record
class CheckReport:
    """A check's answer. ``licensed`` is the only thing that grants.

    Not licensed is a normal answer, not an exception: ``reason`` says why, ``user_message``
    what to show, ``error`` holds the matching :class:`LicenseError` (``raise_for_license()``
    raises it). Truthy when licensed.
    """

    licensed: bool
    outcome: str
    """``licensed``, ``denied``, ``unverified`` or ``error``."""
    source: Optional[Source]
    reason: Optional[Reason]
    error: Optional[LicenseError]
    needs_key: bool
    """``True`` when the app should ask for a key (none remembered, or not a key)."""
    verified_at: Optional[datetime]
    grace_remaining: Optional[timedelta]
    """For a licensed answer from the cache: how long the grace still lasts."""
    grace_ends_at: Optional[datetime]
    fallback: Optional[Reason]
    """For a licensed answer from the cache although Polar was asked: why Polar gave none."""
    cache_error: Optional[LicenseError]
    relay_source: Optional[str]
    lease: Optional[Lease]
    activation_id: Optional[str]
    license: Optional[License]
    perpetual: Optional[Perpetual]
    trial: Optional[Trial]
    features: dict[str, FeatureAccess]
    entitlements: Optional[dict[str, EntitlementValue]] = None
    """The key's entitlement values (issue #68, docs/entitlements.md): the Feature Flag values
    Polar grants it, by name, typed as Polar's metadata (``str``, ``int``, ``float``,
    ``bool``), as the seller's relay signed them into the lease this licensed answer stands on
    (read offline). ``{}``: Polar grants none. ``None``: not known: in unsigned mode (no
    ``relay_keys``: values need the seller's relay), with a relay started without
    ``--sign-entitlements`` or that had not read them yet, or when not licensed."""
    licensed_message: Optional[str] = None
    """For a licensed answer, the core's words for it (issue #80, the same on every face):
    "This device is licensed.", or, from the cache because Polar could not be reached, how
    long this device stays licensed and what keeps it so. ``None`` when not licensed."""
    _outcome: Optional[_native.NativeOutcome] = field(default=None, repr=False, compare=False)
    _user_message: Optional[str] = field(default=None, repr=False, compare=False)

    def entitlement(self, name: str) -> Optional[EntitlementValue]:
        """The value of the entitlement ``name`` of this answer (``None``: not granted, or
        not known: :attr:`entitlements` tells the two apart)."""
        return None if self.entitlements is None else self.entitlements.get(name)

    @property
    def stopped(self) -> Optional[Stopped]:
        """For a denial through the seller's relay: why the key stopped (paused, canceled, a
        seat removed, refunded, rotated, past due) and its dates; else ``None``."""
        return None if self.error is None else self.error.stopped

    @property
    def user_message(self) -> Optional[str]:
        """A sentence for the person using the app: why it is not licensed, or, for a licensed
        answer, :attr:`licensed_message` (an addition, issue #80). Tell the answer by
        :attr:`licensed`, not by this."""
        return self._user_message

    @property
    def detail(self) -> Optional[str]:
        """Polar's ``detail`` for a denial, else ours: for logs, not for the user."""
        return None if self.error is None else self.error.detail

    @property
    def hint(self) -> Optional[str]:
        """For a denial of a key valid here before: what probably happened."""
        return None if self.error is None else self.error.hint

    @property
    def cache_refreshed(self) -> bool:
        """``False`` when the cache could not be written (the answer stands)."""
        return self.cache_error is None

    def raise_for_license(self) -> None:
        """Raises the answer's :class:`LicenseError` unless licensed."""
        if self.error is not None:
            raise self.error

    def __bool__(self) -> bool:
        return self.licensed

    @classmethod
    def _of(cls, d: dict[str, Any], native: Optional[_native.NativeOutcome]) -> CheckReport:
        e, ce, src, fb = d["error"], d["cache_error"], d["source"], d["fallback"]
        p, t = d["perpetual"], d["trial"]
        error = None if e is None else error_from(e)
        return cls(
            licensed=d["licensed"],
            outcome=d["outcome"],
            source=None if src is None else Source(src),
            reason=None if error is None else error.code,
            error=error,
            needs_key=d["needs_key"],
            verified_at=_time(d["verified_at"]),
            grace_remaining=_span(d["grace_remaining"]),
            grace_ends_at=_time(d["grace_ends_at"]),
            fallback=None if fb is None else Reason(fb),
            cache_error=None if ce is None else error_from(ce),
            relay_source=d["relay_source"],
            lease=Lease._of(d["lease"]),
            activation_id=d["activation_id"],
            license=None if d["license"] is None else License._of(d["license"]),
            perpetual=None if p is None else Perpetual(
                date.fromisoformat(p["released"]), _time(p["paid_through"]), p["fallback"]),
            trial=None if t is None else Trial(
                t["local"], t["state"], _time(t["started_at"]), _time(t["ends_at"]),
                t["days_left"]),
            features={k: FeatureAccess._of(v) for k, v in d["features"].items()},
            entitlements=d["entitlements"],
            licensed_message=d["licensed_message"],
            _outcome=native,
            _user_message=d["user_message"],
        )


@record
class Activation:
    """A good activation: remembered in the cache, so checks validate it."""

    id: str
    label: str
    license: License
    lease: Optional[Lease]
    cache_error: Optional[LicenseError]
    """Polar activated but the cache could not remember it: keep ``id`` (or deactivate)."""


@record
class Deactivated:
    """A good deactivation (``Licensing.deactivate``, an addition of issue #80: it returned
    ``None``): this device's seat is free. What to tell the person, in the core's words, the
    same on every face."""

    user_message: str
    """The sentence and its next step, to show whole."""
    next_step: str
    """The next step alone."""


@record
class Validation:
    """A good online validation (``Licensing.validate``)."""

    license: License
    lease: Optional[Lease]
    cache_error: Optional[LicenseError]


@record
class CacheStatus:
    """What the cache holds for a key, with no request (``Licensing.status``)."""

    standing: Standing
    stored: str
    """``empty``, ``untrusted`` or ``present``."""
    activation_id: Optional[str]
    verified_at: Optional[datetime]
    grace_ends_at: Optional[datetime]
    grace_remaining: Optional[timedelta]
    lease: Optional[Lease]
    denied: Optional[Reason]
    display_key: Optional[str]

    @classmethod
    def _of(cls, d: dict[str, Any]) -> CacheStatus:
        dn = d["denied"]
        return cls(Standing(d["standing"]), d["stored"], d["activation_id"],
                   _time(d["verified_at"]), _time(d["grace_ends_at"]),
                   _span(d["grace_remaining"]), Lease._of(d["lease"]),
                   None if dn is None else Reason(dn), d["display_key"])


@record
class Device:
    """A device of a key: one of its live activations (``Licensing.devices``)."""

    id: str
    """The activation id (what ``free_device`` frees)."""
    label: str
    activated_at: datetime
    this_machine: bool
    """``True`` for this machine's activation: the one its cache remembers, or the one whose
    ``meta`` records this machine's fingerprint (a reinstall knows its own row)."""
    platform: Optional[str] = None
    """The platform family it recorded (``linux/x86_64``, ``macos/aarch64``, …), to tell
    devices apart; ``None`` when it recorded none."""
    last_seen: Optional[datetime] = None
    """When the seller's relay last saw it validated; ``None`` when not known."""


@record
class KeyDevices:
    """A key's devices through the customer's session (``Licensing.devices``), oldest first."""

    key_id: str
    """The key record's id."""
    display_key: str
    """``****-4C5B6A``: the key, redacted."""
    limit_activations: Optional[int]
    devices: tuple[Device, ...]

    @property
    def this_machine(self) -> Optional[Device]:
        """This machine's device, when it holds one of the key's activations."""
        return next((d for d in self.devices if d.this_machine), None)

    @classmethod
    def _of(cls, d: dict[str, Any]) -> KeyDevices:
        return cls(d["key_id"], d["display_key"], d["limit_activations"], tuple(
            Device(v["id"], v["label"], datetime.fromtimestamp(v["activated_at"], tz=timezone.utc),
                   v["this_machine"], v.get("platform"),
                   None if v.get("last_seen") is None
                   else datetime.fromtimestamp(v["last_seen"], tz=timezone.utc))
            for v in d["devices"]))


@record
class RecoverableKey:
    """One of the signed-in customer's keys this machine can activate
    (``Licensing.recoverable_keys``): granted and not expired. Shown by its redacted form; the
    whole key goes only into the activation (``Licensing.recover_key``)."""

    id: str
    """The key record's id (what ``recover_key`` takes)."""
    display_key: str
    """``****-4C5B6A``: the key, redacted."""
    expires_at: Optional[datetime]
    limit_activations: Optional[int]

    @classmethod
    def _of(cls, d: dict[str, Any]) -> RecoverableKey:
        return cls(d["id"], d["display_key"], _time(d["expires_at"]), d["limit_activations"])


@record
class RotatedKey:
    """A rotated key followed (``Licensing.follow_rotation``): its new string, validated
    with the activation this machine held (no slot taken). ``repr`` shows only the redacted
    form."""

    display_key: str
    """``****-4C5B6A``: the new key, redacted."""
    license: License
    """Polar's validation of the new key with this machine's activation."""
    key: str = field(default="", repr=False)
    """The new key: check it from now on (or ``check()`` with no key when remembering is on:
    it is remembered in the old one's place). Never log it."""


@record
class UsageRecorded:
    """A usage report the seller's relay recorded (``Licensing.record_usage``)."""

    id: str
    """The report's idempotency id: the app's own, or the one made for it (a UUID v4)."""
    duplicate: bool
    """The relay had seen this id before: counted once, not again."""
    balance: Optional[float]
    """The meter's balance the relay knows after this report (``None``: not read yet)."""

    @classmethod
    def _of(cls, d: dict[str, Any]) -> UsageRecorded:
        return cls(d["id"], bool(d["duplicate"]), d["balance"])
