# Sourced by scripts/test-c.sh (its helpers: expect, exits_printing, reads_well, CFLAGS, LIB_A,
# CLI, OUT, DEMO_ORG, DEMO_KEY): the device-path example (bindings/c/examples/devices.c, issue
# #80) run as a user would, against an emulator of its own (the shared one's demo key keeps its
# slots for the other examples). Three other machines hold the key's three seats; the example
# is refused here, signs in with the code the emulator "mails" (typed on its standard input),
# lists the devices, frees the oldest, activates here and lists again with this machine marked.

devices_example() {
    local dir="$ROOT/$OUT/devices-example" url="" pid out rc n
    rm -rf "$dir"
    mkdir -p "$dir"
    expect "devices.c builds" gcc "${CFLAGS[@]}" bindings/c/examples/devices.c "$LIB_A" \
        -o "$OUT/devices" || return
    "$CLI" emulator --port 0 >"$dir/emulator.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        url="$(sed -n '1s/^listening on //p' "$dir/emulator.log")"
        [[ -n "$url" ]] && break
        sleep 0.1
    done
    # Stand-ins for three other machines, on this one: unbound, or each would carry this
    # machine's fingerprint in its meta and the example would adopt one (issue #80).
    for n in 1 2 3; do
        POLAR_API_URL="$url" "$CLI" --org "$DEMO_ORG" --cache-dir "$dir/old-$n" --no-machine-binding \
            activate --key "$DEMO_KEY" --label "old laptop $n" >/dev/null
    done
    # The customer reads the code in the mail and types it: here, once the emulator holds one.
    out="$({
        for _ in $(seq 1 100); do
            code="$(curl -s "$url/__emulator/customer-session/codes" |
                grep -o '"code":"[A-Z0-9]*"' | tail -n 1 | cut -d '"' -f 4)"
            [[ -n "$code" ]] && break
            sleep 0.1
        done
        echo "$code"
    } | XDG_DATA_HOME="$dir/here" POLAR_ORGANIZATION_ID="$DEMO_ORG" POLAR_API_URL="$url" \
        timeout 60 "$OUT/devices" "$DEMO_KEY" jane.doe@gmail.com 2>&1)"
    rc=$?
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    sed 's/^/  /' <<<"$out"
    local day='[0-9]{4}-[0-9]{2}-[0-9]{2}'
    expect "devices: at the limit, signed in, the oldest freed, activated here and marked (exit 0)" \
        exits_printing "$rc" 0 "$out" \
        'activate: This license key is already active on as many devices as it allows: .*' \
        'code sent to jane.doe@gmail.com: type it here' \
        'devices: 3 of 3 in use' \
        "  old laptop 1  activated $day" \
        "  old laptop 2  activated $day" \
        "  old laptop 3  activated $day" \
        'freed: old laptop 1' \
        'activate: done' \
        'devices: 3 of 3 in use' \
        "  old laptop 2  activated $day" \
        "  old laptop 3  activated $day" \
        "  This computer  activated $day  \(this machine\)"
    expect "devices: no empty parenthesis, field or trailing space" reads_well "$out"
}
