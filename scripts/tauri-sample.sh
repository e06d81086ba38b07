#!/usr/bin/env bash
# The Tauri sample app (examples/tauri-app), built and run under Xvfb, on demand (not part of
# scripts/test.sh: the app's build compiles Tauri with its webview, measured at about 4 minutes
# on 2 cores cold, and the test command's tauri stage already tests the plugin and checks that
# docs/guides/tauri.md shows this app file for file): bash scripts/tauri-sample.sh
#
#   1. bundles the page (esbuild from scripts/npm, with @polar-license/tauri taken from
#      crates/tauri/guest-js: it is not on npm yet) into examples/tauri-app/dist/;
#   2. builds the app (target/tauri-sample), against this checkout's crates
#      (examples/tauri-app/src-tauri/.cargo/config.toml);
#   3. starts the emulator, then the app under Xvfb with a fresh data directory and
#      POLAR_API_URL: the first run (it asks for a key), screenshot; then activates the demo
#      key with the command line in the app's cache directory (`--app-id`, the app's
#      identifier) and starts the app again: licensed from the cache, "Export" enabled,
#      screenshot. The screenshots: target/tauri-sample/first-run.png, licensed.png.
# Needs libwebkit2gtk-4.1-dev (scripts/setup-tauri.sh), and installs xvfb and x11-apps (xwd)
# from apt when missing. The last line is `tauri-sample: N passed, N failed`.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
APP="examples/tauri-app"
OUT="$ROOT/target/tauri-sample"
mkdir -p "$OUT"
PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
bad() { FAILED=$((FAILED + 1)); echo "not ok - $1"; }
finish() {
    echo "tauri-sample: $PASSED passed, $FAILED failed"
    [[ $FAILED -eq 0 ]]
    exit
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

bash scripts/setup-tauri.sh >/dev/null || { bad "scripts/setup-tauri.sh"; finish; }
if ! command -v Xvfb >/dev/null || ! command -v xwd >/dev/null; then
    sudo=""
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    $sudo apt-get update && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y \
        --no-install-recommends xvfb x11-apps || { bad "apt-get install xvfb x11-apps"; finish; }
fi

ESBUILD="scripts/npm/node_modules/.bin/esbuild"
[[ -x "$ESBUILD" ]] || bash scripts/npm-ci.sh >/dev/null
mkdir -p "$APP/dist"
if NODE_PATH="$ROOT/crates/tauri/guest-js/node_modules" "$ESBUILD" "$APP/src/main.js" --bundle \
    --format=esm --outfile="$APP/dist/main.js" \
    --alias:@polar-license/tauri="$ROOT/crates/tauri/guest-js/index.js" &&
    cp "$APP/src/index.html" "$APP/dist/"; then
    ok "the page bundled into $APP/dist"
else
    bad "the page bundled"
    finish
fi

start="$(now)"
if (cd "$APP/src-tauri" && CARGO_TARGET_DIR="$OUT" cargo build) 2>&1 | tee "$OUT/build.log" | tail -n 3; then
    ok "cargo build of the app ($(secs "$start") s)"
else
    bad "cargo build of the app"
    finish
fi
cargo build -q -p polar-license-cli || { bad "the command line"; finish; }
CLI="$ROOT/target/debug/polar-license"

# The emulator, on a port of its own.
"$CLI" emulator --port 0 >"$OUT/emulator.log" 2>&1 &
EMULATOR=$!
DISPLAY_NUM=97
Xvfb ":$DISPLAY_NUM" -screen 0 800x600x24 >"$OUT/xvfb.log" 2>&1 &
XVFB=$!
trap 'kill "$EMULATOR" "$XVFB" 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q '^listening on ' "$OUT/emulator.log" && break; sleep 0.1; done
URL="$(sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$OUT/emulator.log" | head -n 1)"
[[ -n "$URL" ]] || { bad "the emulator started"; finish; }

DATA="$OUT/data"
rm -rf "$DATA"
mkdir -p "$DATA"

# shot NAME: runs the app for a while, screenshots the screen into $OUT/NAME.png.
shot() {
    DISPLAY=":$DISPLAY_NUM" XDG_DATA_HOME="$DATA" POLAR_API_URL="$URL" \
        WEBKIT_DISABLE_COMPOSITING_MODE=1 LIBGL_ALWAYS_SOFTWARE=1 \
        "$OUT/debug/tauri-app" >"$OUT/$1.log" 2>&1 &
    local app=$!
    sleep "${TAURI_SAMPLE_WAIT:-8}"
    xwd -root -silent -display ":$DISPLAY_NUM" >"$OUT/$1.xwd"
    kill "$app" 2>/dev/null
    wait "$app" 2>/dev/null
    python3 "$ROOT/scripts/xwd2png.py" "$OUT/$1.xwd" "$OUT/$1.png"
}

shot first-run && [[ -s "$OUT/first-run.png" ]] && ok "first run: $OUT/first-run.png" ||
    bad "first run screenshot"
# Activated from the command line into the app's own cache directory (its identifier), the key
# remembered: the next launch licenses from the cache.
if XDG_DATA_HOME="$DATA" "$CLI" --base-url "$URL" --org 2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10 \
    --app-id com.example.tauri-app activate --key DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A \
    --label "the sample" --remember >"$OUT/activate.log" 2>&1; then
    ok "activated with the command line (--app-id com.example.tauri-app)"
else
    cat "$OUT/activate.log"
    bad "activate with the command line"
fi
shot licensed && [[ -s "$OUT/licensed.png" ]] && ok "licensed: $OUT/licensed.png" ||
    bad "licensed screenshot"
finish
