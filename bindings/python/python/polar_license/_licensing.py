"""``Licensing``: the grace-aware client, the core's blocking ``Licensing`` underneath."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone

from . import _native
from ._buy import Purchase, PurchaseSignIn
from ._errors import NotSignedIn, error_from
from ._errors import unwrap as _unwrap
from ._report import (
    Activation,
    CacheStatus,
    CheckReport,
    Deactivated,
    EntitlementState,
    FeatureAccess,
    KeyDevices,
    License,
    Lease,
    RecoverableKey,
    RotatedKey,
    UsageRecorded,
    Validation,
)
from ._seats import Seat

# ``typing`` costs more at import than the rest of the package (docs/performance.md): type
# checkers read this block, Python skips it, and the two aliases below are made at their first
# use at run time (``__getattr__``), for code that reads them then (``get_type_hints``, a
# FastAPI signature).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Optional, Union

    MetaValue = Union[bool, int, float, str]
    """A condition or metadata value."""
    Seconds = Union[timedelta, float, int]
    """A duration: a ``timedelta`` or a number of seconds."""
else:

    def __getattr__(name):
        if name in ("MetaValue", "Seconds"):
            from typing import Union

            aliases = {"MetaValue": Union[bool, int, float, str],
                       "Seconds": Union[timedelta, float, int]}
            globals().update(aliases)
            return aliases[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _seconds(value: Optional[Seconds]) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def _activation(d: dict[str, Any]) -> Activation:
    ce = d["cache_error"]
    return Activation(d["id"], d["label"], License._of(d["license"]), Lease._of(d["lease"]),
                      None if ce is None else error_from(ce))


def _purchased(d: dict[str, Any]) -> Union[Purchase, PurchaseSignIn]:
    """A purchase's end: the key bought and its activation (Polar's refusal of the activation
    raised), or the sign-in that finishes it."""
    if "sign_in" in d:
        return PurchaseSignIn._of(d["sign_in"])
    return Purchase(d["key_id"], d["display_key"], _activation(_unwrap(d["activation"])))


def _json(value: Mapping[str, Any]) -> str:
    import json  # here, not at the top: only a mapping of entitlements needs it

    return json.dumps(value)


class Licensing:
    """Grace-aware licensing for one Polar organization: the Rust crate's ``Licensing``.

    ``check`` at every launch (answers from the sealed offline cache within the grace period,
    asks Polar when the last good answer is older than ``revalidate_after``), ``activate``
    once per machine, ``deactivate``, ``validate``, ``feature``. The cache is the one the
    ``polar-license`` command line and every other face keep: same files, same records.

    Every option mirrors the Rust ``LicensingBuilder``; an option the core refuses raises
    :class:`InvalidInputError` naming it. Calls release the GIL while they wait for Polar or
    the disk, so other threads run; ``check_async`` awaits a check on asyncio's default
    executor. Thread-safe: share one instance.

    :param organization_id: the seller organization (a UUID v4, from Polar's dashboard).
    :param app_id: names the default cache directory,
        ``<data dir>/polar-license/<app_id>`` (default: the executable's name, ``python``:
        set it).
    :param base_url: another Polar (the emulator, a seller's relay); ``https://``, or
        ``http://`` on loopback only.
    :param server: ``"production"`` (default) or ``"sandbox"``.
    :param portal_url: where the customer portal and checkouts are (sign-in, devices, the
        customer's keys, key rotation, buying in the app; default: ``base_url``'s). In signed
        mode ``base_url`` is the seller's relay, which serves none of them: set this to
        Polar's (``https://api.polar.sh``, or the emulator while developing).
    :param relay_url: the seller's relay (``https://``, or ``http://`` on loopback only): at
        the activation limit :meth:`activate` lists the key's devices through it and, when one
        is this machine's own (a reinstall), uses it instead of taking another, with no
        sign-in; :meth:`list_devices` and :meth:`record_usage` use it when given no relay.
        Signed mode needs none: its ``base_url`` is the relay.
    :param cache_dir: keep the cache in this directory instead.
    :param grace_period: how long after the last good online verdict an unreachable Polar
        still licenses (default 7 days).
    :param revalidate_after: a verdict younger than this answers with no request (default 1 h).
    :param clock_tolerance: how far the clock may move back (default 10 min).
    :param timeout: whole-request timeout (default 10 s).
    :param connect_timeout: connect timeout (default 5 s).
    :param relay_keys: signed mode: ``KID=k4.public.…`` entries (a list, or comma-separated).
    :param released: perpetual fallback: this build's release date.
    :param trial: a local trial of this many days while the app has no key.
    :param trial_benefits: benefit ids of the seller's trial products.
    :param app_secret: a secret of the app's, mixed into the cache's seal.
    :param require_activation: ``check`` refuses a key with no remembered activation.
    :param machine_binding: ``True`` (the OS machine id, default), ``False`` (off), or an id
        of the app's own.
    :param remember_keys: remember the key of every good activation (``check()`` with none).
    :param entitlements: features by benefit: ``{"pro": ["<benefit id>"], "api": {"benefits":
        [...], "metered": true}}`` (a mapping, or its JSON).
    :param _clock_offset_for_testing: FOR TESTS ONLY: seconds added to the system clock for
        every cache decision (the C API's ``polar_license_config_set_clock_offset_for_testing``),
        to age a cache without waiting. Default 0.

    Out of activations, the customer portal: :meth:`request_sign_in_code`, :meth:`sign_in`
    (the session sealed beside the cache for its hour), :meth:`devices` (the key's live
    activations, this machine's marked) and :meth:`free_device` (by its id, no session
    needed); "I lost my key": :meth:`recoverable_keys` and :meth:`recover_key`; a rotated key:
    :meth:`follow_rotation`. A refusal of the portal's raises a :class:`PortalError`.
    """

    def __init__(
        self,
        organization_id: str,
        *,
        app_id: Optional[str] = None,
        base_url: Optional[str] = None,
        server: Optional[str] = None,
        cache_dir: Union[str, os.PathLike[str], None] = None,
        grace_period: Optional[Seconds] = None,
        revalidate_after: Optional[Seconds] = None,
        clock_tolerance: Optional[Seconds] = None,
        timeout: Optional[Seconds] = None,
        connect_timeout: Optional[Seconds] = None,
        relay_keys: Union[str, Sequence[str], None] = None,
        released: Union[date, str, None] = None,
        trial: Optional[int] = None,
        trial_benefits: Sequence[str] = (),
        app_secret: Union[bytes, str, None] = None,
        require_activation: bool = False,
        machine_binding: Union[bool, str] = True,
        remember_keys: bool = False,
        entitlements: Union[Mapping[str, Any], str, None] = None,
        portal_url: Optional[str] = None,
        relay_url: Optional[str] = None,
        _clock_offset_for_testing: int = 0,
    ) -> None:
        keys = relay_keys if relay_keys is None or isinstance(relay_keys, str) else ",".join(relay_keys)
        native, error = _native.NativeLicensing.build(
            organization_id,
            app_id,
            base_url,
            server,
            None if cache_dir is None else os.fspath(cache_dir),
            _seconds(grace_period),
            _seconds(revalidate_after),
            _seconds(clock_tolerance),
            _seconds(timeout),
            _seconds(connect_timeout),
            keys,
            released.isoformat() if isinstance(released, date) else released,
            trial,
            list(trial_benefits),
            app_secret.encode() if isinstance(app_secret, str) else app_secret,
            require_activation,
            machine_binding if isinstance(machine_binding, str) else None,
            bool(machine_binding),
            remember_keys,
            entitlements if entitlements is None or isinstance(entitlements, str)
            else _json(entitlements),
            _clock_offset_for_testing,
            portal_url,
            relay_url,
        )
        if native is None:
            raise error_from((error or {})["error"])
        self._native = native

    def __repr__(self) -> str:
        return (f"Licensing(organization_id={self._native.organization_id()!r}, "
                f"base_url={self._native.base_url()!r})")

    @property
    def organization_id(self) -> str:
        """The seller organization."""
        return self._native.organization_id()

    @property
    def base_url(self) -> str:
        """Where requests go."""
        return self._native.base_url()

    @property
    def machine_fingerprint(self) -> Optional[str]:
        """This machine's fingerprint for the organization, when activations are bound."""
        return self._native.machine_fingerprint()

    def check(self, key: Optional[str] = None) -> CheckReport:
        """The grace-aware verdict for ``key`` (``None``: the remembered key, else the local
        trial). Never raises for an answer: not licensed is a report with its ``reason``."""
        answer, outcome = self._native.check(key)
        return CheckReport._of(answer, outcome)

    async def check_async(self, key: Optional[str] = None) -> CheckReport:
        """:meth:`check` on asyncio's default executor: the event loop runs meanwhile."""
        import asyncio  # here, not at the top: importing asyncio is most of a cold import

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.check, key)

    def feature(self, report: CheckReport, name: str) -> FeatureAccess:
        """May this copy use ``name``, given ``report`` (a check of this ``Licensing``)?"""
        if report._outcome is None:
            raise ValueError("the report did not come from Licensing.check")
        return FeatureAccess._of(self._native.feature(report._outcome, name))

    def has_feature(self, report: CheckReport, name: str) -> bool:
        """``feature(report, name).granted``."""
        return self.feature(report, name).granted

    def entitlement_state(self, report: CheckReport, name: str) -> EntitlementState:
        """What ``report`` (a check of this ``Licensing``) says of the entitlement ``name``:
        ``granted`` with its value, ``absent``, ``unknown``, ``unsigned`` or ``not_licensed``,
        and for the three between the core's one sentence and next step to show
        (``user_message``), the words every face says."""
        if report._outcome is None:
            raise ValueError("the report did not come from Licensing.check")
        return EntitlementState._of(self._native.entitlement_state(report._outcome, name))

    def entitlement(self, name: str) -> Optional[Union[str, int, float, bool]]:
        """The entitlement value ``name`` as the last :meth:`check`'s licensed answer read it
        from its verified lease, offline (issue #68, docs/entitlements.md): a Feature Flag
        value typed as Polar's metadata (``str``, ``int``, ``float``, ``bool``). ``None`` when
        the key is granted no such value, when the last check did not license, and whenever
        values are not known: **in unsigned mode** (no ``relay_keys``: Polar's answers to a
        client never carry a Feature Flag's values; only the seller's relay, started with
        ``--sign-entitlements``, reads them and signs them into the lease), or before the relay
        read them. ``CheckReport.entitlements`` tells "granted none" (``{}``) from "not known"
        (``None``)."""
        value: Optional[Union[str, int, float, bool]] = self._native.entitlement(name)
        return value

    def activate(
        self,
        key: str,
        label: Optional[str] = None,
        *,
        conditions: Optional[Mapping[str, MetaValue]] = None,
        meta: Optional[Mapping[str, MetaValue]] = None,
    ) -> Activation:
        """Activates ``key`` on this machine (takes one of the key's slots) and remembers the
        activation. Without ``label``, the activation is labelled with this machine's host name
        and OS (e.g. ``jane-laptop (Linux)``), so the customer's device list tells machines
        apart; raises :class:`LicenseDenied` (``activation_limit``, ``not_found``, …)
        or another :class:`LicenseError`."""
        return _activation(_unwrap(self._native.activate(
            key, label, None if conditions is None else dict(conditions),
            None if meta is None else dict(meta))))

    def validate(
        self,
        key: str,
        *,
        activation_id: Optional[str] = None,
        conditions: Optional[Mapping[str, MetaValue]] = None,
        benefit_id: Optional[str] = None,
        customer_id: Optional[str] = None,
        increment_usage: Optional[int] = None,
    ) -> Validation:
        """Validates online once (no answer from the cache); raises a :class:`LicenseError`
        for a denial or no answer. The answer updates the key's record."""
        d = _unwrap(self._native.validate(
            key, activation_id, None if conditions is None else dict(conditions),
            benefit_id, customer_id, increment_usage))
        ce = d["cache_error"]
        return Validation(License._of(d["license"]), Lease._of(d["lease"]),
                          None if ce is None else error_from(ce))

    def deactivate(self, key: str, activation_id: Optional[str] = None) -> Deactivated:
        """Deactivates ``activation_id``, or the remembered activation, and forgets it; returns
        what to tell the person (the seat is free)."""
        said = _unwrap(self._native.deactivate(key, activation_id))
        return Deactivated(said["user_message"], said["next_step"])

    def status(self, key: str) -> CacheStatus:
        """What the cache holds for ``key``, with no request."""
        return CacheStatus._of(_unwrap(self._native.status(key)))

    def remember_key(self, key: str) -> None:
        """Remembers ``key`` (sealed beside the records) for ``check()`` with no key."""
        _unwrap(self._native.remember_key(key))

    def remembered_key(self) -> Optional[str]:
        """The remembered key's redacted form (``****-4C5B6A``), or ``None``."""
        value: Optional[str] = _unwrap(self._native.remembered_key())
        return value

    def forget_key(self) -> None:
        """Forgets the remembered key."""
        _unwrap(self._native.forget_key())

    def forget(self, key: str) -> None:
        """Forgets everything cached for ``key`` (Polar is not told)."""
        _unwrap(self._native.forget(key))

    # The customer portal (issue #64): out of activations, see the key's devices and free one.

    def request_sign_in_code(self, email: str, *, customer_id: Optional[str] = None) -> None:
        """Asks Polar to email a 6-character sign-in code to ``email`` (valid 30 minutes).
        Polar answers the same for an email that bought nothing: tell the user "if this email
        bought a license, a code is on its way". ``customer_id`` names one of several customers
        with that email (after :class:`CustomerSelectionRequired`)."""
        _unwrap(self._native.request_sign_in_code(email, customer_id))

    def sign_in(self, code: str) -> datetime:
        """Signs in with the emailed code (any case); the customer session is sealed beside
        the cache for its hour (never in plain text; the ``polar-license`` command line shares
        it). Returns when the session ends. Raises :class:`SignInCodeInvalid` for a wrong,
        used or expired code."""
        expires_at: int = _unwrap(self._native.sign_in(code))
        return datetime.fromtimestamp(expires_at, tz=timezone.utc)

    def sign_out(self) -> None:
        """Forgets the remembered session."""
        _unwrap(self._native.sign_out())

    def devices(self, key: Optional[str] = None) -> KeyDevices:
        """The live activations of ``key`` (``None``: the remembered key) through the
        remembered session, this machine's marked. Raises :class:`NotSignedIn` (no request),
        :class:`SessionExpired`, :class:`KeyNotFound`, :class:`DeviceManagementOff`, …"""
        return KeyDevices._of(_unwrap(self._native.devices(key)))

    def list_devices(self, key: Optional[str] = None, *, relay: Optional[str] = None) -> KeyDevices:
        """The live activations of ``key`` (``None``: the remembered key), this machine's
        marked, by the way the app has (the core picks, in this order, as every face does):
        through the remembered session when signed in, else through the seller's relay at
        ``relay`` (its URL: the key proves it is the customer's, no email code; ``None``: the
        ``relay_url`` this was made with, or in signed mode ``base_url``), else
        :class:`NotSignedIn` (no request). Raises :class:`KeyNotFound` (a key the relay's Polar
        does not know), :class:`SessionExpired`, :class:`DeviceManagementOff`, …"""
        return KeyDevices._of(_unwrap(self._native.list_devices(key, relay)))

    def record_usage(self, meter: str, units: float, *, relay: Optional[str] = None,
                     key: Optional[str] = None, id: Optional[str] = None) -> UsageRecorded:
        """Reports ``units`` of ``meter`` (the event name the seller's meter counts) used with
        ``key`` (``None``: the remembered key) to the seller's relay at ``relay`` (its URL:
        ``relay serve --record-usage``; ``None``: the ``relay_url`` this was made with, else
        ``base_url``), with the idempotency id ``id`` (1 to 64 characters of
        ``A-Z a-z 0-9 - _ .``; ``None``: a new one). The core sends it again with the same id
        while the relay cannot be reached, answers 5xx or asks to wait (three sends at most); a
        report sent again with the same id counts once (``duplicate``).

        Raises :class:`LicenseDenied` ``credits_exhausted`` (the seller's rule at zero credits:
        not recorded; ``balance``), :class:`UsageBacklog` (``retry_after``), Polar's denial of
        the key (:class:`LicenseDenied`), :class:`LicenseUnverified` (no answer: it may have
        been recorded), each with the report's ``usage_id`` to send it again with; and
        :class:`InvalidInputError` for a bad meter, units (above 0, at most 1,000,000,000),
        id or key, before any request."""
        return UsageRecorded._of(_unwrap(self._native.record_usage(meter, units, relay, key, id)))

    def acquire_seat(self, key: Optional[str] = None, *, machine: Optional[str] = None,
                     ci: bool = False, grace: Optional[Seconds] = None,
                     background: bool = True) -> Seat:
        """Acquires one of ``key``'s floating seats (a CI seat when ``ci``; ``None``: the
        remembered key) from the seller's relay at :attr:`base_url`, for ``machine`` (the
        binding signed into the seat's lease; ``None``: this machine's fingerprint), and holds
        it through the core's hold (docs/seats.md). No Polar activation is made.

        A seat is held only while the relay says so: its signed seat lease is verified with
        ``relay_keys`` before it is held and at every heartbeat, so a :class:`Licensing`
        without relay keys holds none (:class:`InvalidInputError`, ``field`` ``relay_keys``,
        nothing sent), and an answer whose lease is missing or does not verify (a ``200``
        forged by anything between the app and the relay) is no seat
        (:class:`LicenseFailure` ``protocol_error``; the seat it named is given back). When the
        relay stays out of reach the seat is lost at its lease's end (``seat_lost``), or
        ``grace`` after it (the seller's choice; none by default).

        ``background=True`` heartbeats on a thread of the library's own; ``False`` leaves it
        to the app (:meth:`Seat.poll`). Raises :class:`SeatsFull` (every seat in use:
        ``in_use``, ``size``, ``frees_at``), Polar's denial of the key (:class:`LicenseDenied`),
        :class:`LicenseUnverified` (no answer, ``rate_limited``)."""
        native, answer = self._native.acquire_seat(key, machine, ci, _seconds(grace) or 0.0,
                                                   background)
        _unwrap(answer)
        assert native is not None
        return Seat(native)

    def free_device(self, activation_id: str, key: Optional[str] = None) -> bool:
        """Frees the activation ``activation_id`` of ``key`` (``None``: the remembered key)
        with the public deactivate: no session needed. Returns ``True`` when it was this
        machine's activation (no longer licensed here; the cache forgets it). Raises
        :class:`LicenseDenied` (``not_found``: already freed, or not this key's) or another
        :class:`LicenseError`."""
        freed: dict[str, Any] = _unwrap(self._native.free_device(activation_id, key))
        return bool(freed["this_machine"])

    # Key recovery and rotation (issue #64): through the same remembered session.

    def recoverable_keys(self) -> tuple[RecoverableKey, ...]:
        """"I lost my key": the signed-in customer's keys this machine can activate (granted,
        not expired), newest first, each by its record id and redacted form (the whole key is
        never handed out; :meth:`recover_key` activates one). Raises :class:`NotSignedIn` (no
        request), :class:`SessionExpired` (the session is forgotten), …"""
        keys: list[dict[str, Any]] = _unwrap(self._native.recoverable_keys())
        return tuple(RecoverableKey._of(k) for k in keys)

    def recover_key(self, key_id: str, label: str) -> Activation:
        """Activates here the recoverable key whose record id is ``key_id`` (one of
        :meth:`recoverable_keys`) with ``label``, as :meth:`activate` does (the key remembered
        when remembering is on). Raises :class:`KeyNotFound` when ``key_id`` is none of them
        (nothing activated), :class:`NotSignedIn`, :class:`SessionExpired`, and what
        :meth:`activate` raises (:class:`LicenseDenied` ``activation_limit``, …)."""
        return _activation(_unwrap(self._native.recover_key(key_id, label)))

    # Buying in the app (issue #80): the core's purchase machine.

    def open_checkout_link(self, link: str, *, email: Optional[str] = None) -> str:
        """Opens a checkout from the seller's checkout link (its URL or ``polar_cl_…``
        secret), ``email`` prefilled: the new checkout's URL, for the buyer to pay at and for
        :meth:`buy` to follow. Raises :class:`CheckoutNotFound` (no such link), …"""
        from ._buy import purchase_answer

        url: str = purchase_answer(self._native.open_checkout_link(link, email))
        return url

    def open_relay_checkout(self, relay_url: str, product_id: str, *,
                            metadata: Optional[Mapping[str, MetaValue]] = None,
                            email: Optional[str] = None,
                            success_url: Optional[str] = None) -> str:
        """Asks the seller's relay at ``relay_url`` (``relay serve --checkout-product``) to
        make a checkout of ``product_id`` (a product the seller sells there), with the app's
        ``metadata`` kept on it and its order at Polar, ``email`` prefilled and ``success_url``
        (on an origin the seller allows) where Polar sends the buyer after paying: the new
        checkout's URL, for the buyer to pay at and for :meth:`buy` to follow. A product id
        that is no UUID or metadata past Polar's limits raises :class:`InvalidInputError`
        before anything is sent; the relay's refusals are :class:`PortalError`\\ s."""
        from ._buy import purchase_answer

        url: str = purchase_answer(self._native.open_relay_checkout(
            relay_url, product_id, None if metadata is None else dict(metadata), email,
            success_url))
        return url

    def buy(self, checkout: str, label: str, *,
            success_url: Optional[str] = None) -> Union[Purchase, PurchaseSignIn]:
        """Buys in the app, no key typed: follows ``checkout`` (its URL or ``polar_c_…``
        client secret) until the buyer has paid (read every 2 s, for 30 minutes at most),
        finds the key bought through the customer session of ``success_url`` (the whole URL
        the buyer's browser landed on: Polar adds ``customer_session_token`` to it), waits
        while Polar is still issuing it, and activates it here with ``label`` (remembered when
        remembering is on): a :class:`Purchase`.

        Without a session (no ``success_url``, or a buyer Polar matched to an existing
        customer by email, who gets none), Polar is asked to email a sign-in code to the
        checkout's address: a :class:`PurchaseSignIn`; then :meth:`sign_in` with the code and
        :meth:`buy_signed_in`. Raises :class:`KeyIssuing` (still missing two minutes after
        paying: try again; never ``not_found``), :class:`CheckoutExpired`,
        :class:`CheckoutFailed`, :class:`CheckoutNotFound`, :class:`NotPaid`, the portal's
        :class:`PortalError`, :class:`InvalidInputError` (a ``success_url`` with no session
        token, a bad checkout)."""
        from ._buy import purchase_answer

        return _purchased(purchase_answer(self._native.buy(checkout, label, success_url)))

    def buy_signed_in(self, receipt: PurchaseSignIn, label: str) -> Purchase:
        """The rest of a purchase that ended with :class:`PurchaseSignIn`, once signed in
        (:meth:`sign_in` with the emailed code): the key bought found and activated here.
        Raises as :meth:`buy` does, and :class:`NotSignedIn`."""
        from ._buy import purchase_answer

        created = None if receipt.created_at is None else int(receipt.created_at.timestamp())
        end = _purchased(purchase_answer(self._native.buy_signed_in(
            receipt.checkout_id, receipt.email, created, list(receipt.benefit_ids), label)))
        if not isinstance(end, Purchase):
            raise NotSignedIn("not_signed_in", "no customer session is remembered here")
        return end

    def follow_rotation(self, old_key: str) -> RotatedKey:
        """Follows ``old_key`` after the key was rotated (Polar answers the old string
        ``not_found`` at once; rotation keeps the record id, limits and activations): the
        customer's key with the record id this cache remembers is validated with the
        activation this machine holds, so no slot is taken, and remembered in the old one's
        place. Raises :class:`InvalidInputError` (field ``key``) when nothing of ``old_key`` is
        cached here, :class:`KeyNotFound` when it was not rotated (or is not the customer's),
        :class:`NotSignedIn`, :class:`SessionExpired`, :class:`LicenseDenied` for Polar's
        refusal of the new key, …"""
        d = _unwrap(self._native.follow_rotation(old_key))
        return RotatedKey(d["display_key"], License._of(d["license"]), d["key"])
