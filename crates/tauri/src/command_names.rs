// Every command of the plugin, as the webview invokes it (`plugin:polar-license|<name>`): the
// one list, included by build.rs (which generates a permission for each) and by src/lib.rs
// (`COMMANDS`).
&[
    "check",
    "check_in_background",
    "activate",
    "deactivate",
    "validate",
    "status",
    "remembered_key",
    "forget_key",
    "has_feature",
    "entitlement",
    "request_sign_in_code",
    "sign_in",
    "sign_out",
    "list_devices",
    "free_device",
    "recoverable_keys",
    "recover_key",
    "follow_rotation",
    "seat_acquire",
    "seat_heartbeat",
    "seat_release",
    "record_usage",
]
