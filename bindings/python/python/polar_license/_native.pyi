# The native module's types (src/lib.rs). Private: use the package's classes. An answer is
# `{"ok": value}` or `{"error": {...}}`, plain Python values (no JSON text to parse).
from typing import Any, Optional

CORE_VERSION: str
REASONS: list[tuple[str, str]]
DEMO_ORGANIZATION_ID: str
DEMO_BENEFIT_ID: str
DEMO_CUSTOMER_ID: str
DEMO_KEY: str
DEMO_KEY_REVOKED: str
DEMO_KEY_DISABLED: str
DEMO_KEY_EXPIRED: str
DEMO_KEY_USAGE: str
DEMO_KEY_NO_ACTIVATIONS: str

MetaValue = bool | int | float | str
Answer = dict[str, Any]

class NativeOutcome: ...

class NativeLicensing:
    @staticmethod
    def build(
        organization_id: str,
        app_id: Optional[str],
        base_url: Optional[str],
        server: Optional[str],
        cache_dir: Optional[str],
        grace_period: Optional[float],
        revalidate_after: Optional[float],
        clock_tolerance: Optional[float],
        timeout: Optional[float],
        connect_timeout: Optional[float],
        relay_keys: Optional[str],
        released: Optional[str],
        trial: Optional[int],
        trial_benefits: list[str],
        app_secret: Optional[bytes],
        require_activation: bool,
        machine_binding: Optional[str],
        bind_machine: bool,
        remember_keys: bool,
        entitlements: Optional[str],
    ) -> tuple[Optional[NativeLicensing], Optional[Answer]]: ...
    def check(self, key: Optional[str] = None) -> tuple[dict[str, Any], NativeOutcome]: ...
    def feature(self, outcome: NativeOutcome, feature: str) -> dict[str, Any]: ...
    def activate(
        self,
        key: str,
        label: str,
        conditions: Optional[dict[str, MetaValue]] = None,
        meta: Optional[dict[str, MetaValue]] = None,
    ) -> Answer: ...
    def validate(
        self,
        key: str,
        activation_id: Optional[str] = None,
        conditions: Optional[dict[str, MetaValue]] = None,
        benefit_id: Optional[str] = None,
        customer_id: Optional[str] = None,
        increment_usage: Optional[int] = None,
    ) -> Answer: ...
    def deactivate(self, key: str, activation_id: Optional[str] = None) -> Answer: ...
    def status(self, key: str) -> Answer: ...
    def remember_key(self, key: str) -> Answer: ...
    def remembered_key(self) -> Answer: ...
    def forget_key(self) -> Answer: ...
    def forget(self, key: str) -> Answer: ...
    def machine_fingerprint(self) -> Optional[str]: ...
    def base_url(self) -> str: ...
    def organization_id(self) -> str: ...

class NativeEmulator:
    def __init__(
        self, seed_json: Optional[str] = None, port: int = 0, api_version: Optional[str] = None
    ) -> None: ...
    @property
    def url(self) -> str: ...
    @property
    def organization_id(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def set_fault(self, fault_json: Optional[str] = None) -> None: ...
    def update_key(self, key: str, update_json: str) -> bool: ...
    def request_count(self) -> int: ...
    def activations(self, key: str) -> str: ...
    def stop(self) -> None: ...
