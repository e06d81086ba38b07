"""The seller's rows (issue #54, "Done when" 2nd bullet; issue #66): perpetual fallback and
trials from the one table every face plays (tests/vectors/seller-rows.json), through the
Python package. Each row runs against an emulator of its own (seeded with the row's key: its
benefit, expiry and 2027-01 subscription), Polar's clock moved with
``Emulator.set_clock_offset`` and the app's with a ``Licensing`` built for each step with
``_clock_offset_for_testing`` (as the C runner builds a client per step with
``polar_license_config_set_clock_offset_for_testing``), the cache kept between steps. Each
verdict is rendered exactly as the Rust faces render theirs (crates/testkit/src/seller_rows.rs,
``Verdict::render``; tests/js/seller-rows.mjs) and the rows are written to
``$POLAR_SELLER_TABLE_DIR/python.tsv`` (face row expected got result) for
scripts/seller-table.sh. scripts/test-python.sh sets ``POLAR_SELLER_ROWS`` (the table) and
``POLAR_SELLER_TABLE_DIR``; without the table the test is skipped, and the table's Python
column then fails for want of its file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import time
import urllib.request
from collections.abc import Generator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pytest

from polar_license import CheckReport, LicenseError, Licensing, PortalError
from polar_license.emulator import Emulator

ROWS = os.environ.get("POLAR_SELLER_ROWS", "")
# The CLI whose ``relay serve`` a devices_relay row lists through (scripts/test-python.sh sets it).
CLI = os.environ.get("POLAR_LICENSE_CLI", "")
TOKEN = "polar_oat_emulator_demo_0123456789abcdef"  # the demo seed's organization token
OUT = os.environ.get("POLAR_SELLER_TABLE_DIR", "")
# ``POLAR_SELLER_ONLY=workers``: only the values rows' cells on the Workers relay, added to
# python.tsv (its other rows kept): scripts/seller-workers.sh runs this file so once the
# installed npm package is there, after the python stage played and wrote the rest.
WORKERS_ONLY = os.environ.get("POLAR_SELLER_ONLY", "") == "workers"

DAY = 86400
ORG = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10"
KEY = "SELLER-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A"
CUSTOMER = "5d3c2b1a-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
TRIAL_BENEFIT = "7f3c1e2a-9b4d-4c8e-a1f2-3d4e5f6a7b8c"
PAID_BENEFIT = "4b1c2d3e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
# Devices rows (issue #64): the key's customer's email, a benefit with device management on.
DEVICES_EMAIL = "jane.doe@gmail.com"
DEVICES_BENEFIT = "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d"

pytestmark = pytest.mark.skipif(not Path(ROWS).is_file(),
                                reason="POLAR_SELLER_ROWS names no seller-rows.json")


def seconds(day: float) -> int:
    """A day of the table in seconds, rounded half away from zero (as the Rust runner)."""
    s = day * DAY
    return int(math.floor(s + 0.5)) if s >= 0 else -int(math.floor(-s + 0.5))


def at(secs: int) -> str:
    """``+Nd``, or ``+Nd+Mm``: a time from the row's start rounded to the minute."""
    m = secs / 60
    minutes = int(math.floor(m + 0.5)) if m >= 0 else -int(math.floor(-m + 0.5))
    d, rest = divmod(minutes, 1440)
    sign = "-" if d < 0 else "+"
    return f"{sign}{abs(d)}d" if rest == 0 else f"{sign}{abs(d)}d+{rest}m"


def render(v: dict[str, Any]) -> str:
    """A verdict in the table's vocabulary as one line (tests/js/seller-rows.mjs ``render``)."""
    s: str = v["verdict"]
    if v.get("source") is not None:
        s += f" {v['source']}"
    if "fallback" in v:
        fb, paid = v["fallback"]
        if fb:
            s += f" · fallback to {'?' if paid is None else at(paid)}"
        elif paid is not None:
            s += f" · no fallback, paid to {at(paid)}"
        else:
            s += " · no fallback"
    if "trial" in v:
        t = v["trial"]
        if t is None:
            s += " · no trial"
        else:
            ends = "?" if t["ends"] is None else at(t["ends"])
            s += (f" · trial {'local' if t['local'] else 'key'} {t['state']} "
                  f"{t['days_left']}d left, ends {ends}")
    return s


def expected(step: dict[str, Any]) -> Optional[dict[str, Any]]:
    """A step's expectation as a verdict (seconds from the row's start), or ``None``."""
    e = step.get("expect")
    if not e:
        return None

    def day(d: Optional[float]) -> Optional[int]:
        return None if d is None else seconds(d)

    v: dict[str, Any] = {"verdict": e["verdict"]}
    if e.get("source") is not None:
        v["source"] = e["source"]
    if isinstance(e.get("fallback"), bool):
        v["fallback"] = [e["fallback"], day(e.get("paid_through_day"))]
    if "trial" in e:
        t = e["trial"]
        v["trial"] = None if t is None else {
            "local": t["local"], "state": t["state"], "days_left": t["days_left"],
            "ends": day(t.get("ends_day")),
        }
    return v


def unix(t: Optional[datetime]) -> Optional[int]:
    return None if t is None else int(t.timestamp())


def verdict(row: dict[str, Any], report: CheckReport, start: int) -> dict[str, Any]:
    """A report in the table's vocabulary, as the Rust runner reads one
    (``Verdict::of_report``)."""
    app: dict[str, Any] = row.get("app") or {}
    v: dict[str, Any] = {}
    trial = report.trial
    if report.licensed:
        v["verdict"] = "licensed"
        v["source"] = None if report.source is None else report.source.value
    elif trial is not None and trial.local and trial.state == "active":
        v["verdict"] = "trial"
    else:
        v["verdict"] = "none" if report.reason is None else report.reason.value
    if app.get("released_day") is not None:
        p = report.perpetual
        paid = None if p is None else unix(p.paid_through)
        v["fallback"] = [p is not None and p.fallback, None if paid is None else paid - start]
    if app.get("trial_days") is not None or app.get("trial_benefit"):
        ends = None if trial is None else unix(trial.ends_at)
        v["trial"] = None if trial is None else {
            "local": trial.local, "state": trial.state, "days_left": trial.days_left,
            "ends": None if ends is None else ends - start,
        }
    return v


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed(row: dict[str, Any], start: int) -> dict[str, Any]:
    """The row's Polar: its key, with the row's benefit, expiry and subscription."""
    p = row["polar"]
    key: dict[str, Any] = {"key": KEY, "customer_id": CUSTOMER,
                           "limit_activations": p.get("limit_activations", 3)}
    benefits: list[dict[str, Any]] = []
    if is_devices_row(row):
        key.update(customer_email=DEVICES_EMAIL, benefit_id=DEVICES_BENEFIT)
        benefits.append({"id": DEVICES_BENEFIT,
                         "enable_customer_admin": p.get("customer_admin", True)})
    if p.get("benefit") == "trial":
        key["benefit_id"] = TRIAL_BENEFIT
    if p.get("benefit") == "paid":
        key["benefit_id"] = PAID_BENEFIT
    if p.get("expires_day") is not None:
        key["expires_at"] = iso(start + seconds(p["expires_day"]))
    s = p.get("subscription")
    if s:
        sub: dict[str, Any] = {"status": s["status"],
                               "cancel_at_period_end": bool(s.get("cancel_at_period_end"))}
        if s.get("period_end_day") is not None:
            sub["current_period_end"] = iso(start + seconds(s["period_end_day"]))
        if s.get("ends_day") is not None:
            sub["ends_at"] = iso(start + seconds(s["ends_day"]))
        key["subscription"] = sub
    seeded: dict[str, Any] = {"organization_id": ORG, "license_keys": [key], "benefits": benefits}
    if any(st["do"] == "devices_relay" for st in row["steps"]):
        # The organization token the seller's relay reads the key's devices with.
        seeded["access_tokens"] = [{"token": TOKEN}]
    return seeded


def is_devices_row(row: dict[str, Any]) -> bool:
    return any(s["do"] in ("sign_in", "elsewhere", "request_codes") for s in row["steps"])


def codes_cell(licensing: Licensing, times: int) -> str:
    """Sign-in codes asked for ``times`` times, stopping at the first refusal: ``sent:N``, then
    the refusal's ``portal_error`` name and, for ``rate_limited``, the wait the error gives
    (``:wait=S``, ``?`` none)."""
    sent = 0
    for _ in range(times):
        try:
            licensing.request_sign_in_code(DEVICES_EMAIL)
        except PortalError as e:
            cell = f"sent:{sent},{e.kind}"
            if e.kind == "rate_limited":
                cell += f":wait={'?' if e.retry_after is None else e.retry_after}"
            return cell
        sent += 1
    return f"sent:{sent}"


def devices_cell(licensing: Licensing, relay: str = "") -> str:
    """The key's devices through the session (with ``relay``, through the seller's relay at
    that URL) as a cell (``devices:N,this:marked``), or the failure's ``portal_error`` name."""
    try:
        found = licensing.list_devices(KEY, relay=relay) if relay else licensing.devices(KEY)
    except PortalError as e:
        return e.kind
    marked = "marked" if found.this_machine is not None else "unmarked"
    return f"devices:{len(found.devices)},this:{marked}"


def recovered(licensing: Licensing) -> str:
    """"I lost my key": the customer's keys through the session, the one whose display form
    is the row's key's (``****-`` and its last six) activated here by its id, as a cell
    (``recovered:activated`` or ``recovered:REASON``), ``unlisted``, or the session's
    failure."""
    try:
        keys = licensing.recoverable_keys()
    except PortalError as e:
        return e.kind
    lost = next((k for k in keys if k.display_key.upper().endswith(KEY[-6:].upper())), None)
    if lost is None:
        return "unlisted"
    try:
        licensing.recover_key(lost.id, "Recovered here")
    except LicenseError as e:
        return f"recovered:{e.code.value}"
    except PortalError as e:
        return e.kind
    return "recovered:activated"


def followed(licensing: Licensing, mine: Optional[str]) -> str:
    """The rotated key followed through the session to its new string, as a cell
    (``followed:licensed,activation:kept`` when Polar grants it with ``mine``, the activation
    this machine took; ``followed:REASON``), or the session's failure."""
    try:
        rotated = licensing.follow_rotation(KEY)
    except LicenseError as e:
        return f"followed:{e.code.value},activation:changed"
    except PortalError as e:
        return e.kind
    kept = mine is not None and rotated.license.activation_id == mine
    licensed = licensing.check(rotated.key).licensed
    return f"followed:{'licensed' if licensed else 'unlicensed'},activation:{'kept' if kept else 'changed'}"


def elsewhere(polar: Emulator, label: str) -> None:
    """Another machine activates the key (set-up: Polar's public activate)."""
    body = json.dumps({"key": KEY, "organization_id": ORG, "label": label}).encode()
    req = urllib.request.Request(f"{polar.url}/v1/customer-portal/license-keys/activate",
                                 data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


@contextlib.contextmanager
def relay_in_front_of(polar: Emulator, row: dict[str, Any], keys: Path) -> Generator[str, None, None]:
    """The seller's relay (the CLI's ``relay serve``) in front of ``polar`` when a step of
    ``row`` lists through it: its URL (else ``""``)."""
    if not any(s["do"] == "devices_relay" for s in row["steps"]):
        yield ""
        return
    assert CLI, "POLAR_LICENSE_CLI names no polar-license binary"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLAR_")}
    keys.mkdir(parents=True, exist_ok=True)
    key_file = keys / "relay.key"
    subprocess.run([CLI, "relay", "keygen", "--org", ORG, "--out", str(key_file)], env=env,
                   capture_output=True, text=True, timeout=60, check=True)
    serve = subprocess.Popen(
        [CLI, "relay", "serve", "--org", ORG, "--signing-key", str(key_file), "--base-url",
         polar.url, "--access-token", TOKEN, "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline().strip()
        assert first.startswith("listening on "), first
        yield first.removeprefix("listening on ")
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def play(row: dict[str, Any], cache: Path) -> tuple[str, str, list[str]]:
    """Plays ``row``: the cell's expected and got lines, and every failed step."""
    start = int(time.time())
    app: dict[str, Any] = row.get("app") or {}
    failures: list[str] = []
    cell = (next((i for i, s in enumerate(row["steps"]) if s.get("cell")), -1))
    want_cell = got_cell = ""
    options: dict[str, Any] = {}
    if app.get("released_day") is not None:
        released = datetime.fromtimestamp(start + seconds(app["released_day"]), tz=timezone.utc)
        options["released"] = released.date()
    if app.get("trial_days") is not None:
        options["trial"] = app["trial_days"]
    if app.get("trial_benefit"):
        options["trial_benefits"] = [TRIAL_BENEFIT]
    # Polar's per-address limits on when the row says (the emulator's own, as --rate-limit).
    with Emulator(seed(row, start), api_version=row["polar"].get("api") or "2026-10",
                  rate_limit=bool(row["polar"].get("rate_limit"))) as polar, \
            relay_in_front_of(polar, row, cache.with_name(cache.name + "-relay")) as relay:
        ahead = 0
        mine: Optional[str] = None  # the activation this machine took (a rotation keeps it)
        for i, step in enumerate(row["steps"]):
            if step["do"] == "offline":
                polar.set_fault({"kind": "close_immediately"})
                continue
            if step["do"] == "elsewhere":
                elsewhere(polar, step["label"])
                continue
            if step["do"] == "polar_clock":
                # Polar's clock alone (the app's stays): the devices steps keep it there.
                ahead = seconds(step["day"])
                polar.set_clock_offset(ahead)
                continue
            offset = seconds(step.get("day", 0))
            polar.set_clock_offset(offset + ahead)
            if step["do"] == "revoke":
                assert polar.update_key(KEY, status="revoked")
                continue
            if step["do"] == "rotate":
                # The customer rotates the key at Polar (the emulator's rotate route).
                assert polar.rotate_key(KEY) is not None
                continue
            licensing = Licensing(ORG, base_url=polar.url, cache_dir=cache,
                                  machine_binding="machine-A", timeout=10,
                                  _clock_offset_for_testing=offset, **options)
            if step["do"] == "activate":
                try:
                    licensing.activate(KEY, "laptop")
                except Exception as e:  # noqa: BLE001 - a failed step is reported, not raised
                    failures.append(f"step {i}: activate: {e!r}")
                continue
            got: dict[str, Any]
            if step["do"] == "sign_in":
                licensing.request_sign_in_code(DEVICES_EMAIL)
                code = [c for c in polar.sign_in_codes() if c["email"] == DEVICES_EMAIL][-1]
                licensing.sign_in(code["code"])
                continue
            if step["do"] == "free_other":
                other = next((d for d in licensing.devices(KEY).devices if not d.this_machine),
                             None)
                if other is None:
                    failures.append(f"step {i}: no other device")
                else:
                    licensing.free_device(other.id, KEY)
                continue
            if step["do"] == "try_activate":
                try:
                    mine = licensing.activate(KEY, "This laptop").id
                    got = {"verdict": "activated"}
                except LicenseError as e:
                    got = {"verdict": e.code.value}
            elif step["do"] == "devices":
                got = {"verdict": devices_cell(licensing)}
            elif step["do"] == "recover":
                got = {"verdict": recovered(licensing)}
            elif step["do"] == "follow_rotation":
                got = {"verdict": followed(licensing, mine)}
            elif step["do"] == "devices_relay":
                got = {"verdict": devices_cell(licensing, relay)}
            elif step["do"] == "request_codes":
                got = {"verdict": codes_cell(licensing, step["times"])}
            else:
                got = verdict(row, licensing.check(None if step["do"] == "trial" else KEY), start)
            want = expected(step)
            if want is None:
                continue
            w, g = render(want), render(got)
            if w != g:
                failures.append(f"step {i}: expected `{w}`, got `{g}`")
            if cell in (-1, i):
                want_cell, got_cell = w, g
    return want_cell, got_cell, failures


# The values rows (issue #68, ``"world": "values"``): the row's Polar and its two relays are a
# tests/js/values-world.mjs process a relay host (one JSON line a step), which plays the Polar
# steps; this face plays its own: ``Licensing.check`` through the relay in signed mode and
# ``entitlement(name)`` (value), ``record_usage`` (usage), a denial's typed ``stopped``
# (relay_check). The Workers host where the installed npm package (CONSUMER) and workerd are.
POLL = 10.0


class World:
    """tests/js/values-world.mjs on ``host``: its hello's fields, ``step`` and ``close``."""

    def __init__(self, host: str) -> None:
        root = Path(ROWS).resolve().parents[2]
        env = dict(os.environ, POLAR_CLI=CLI)
        self.proc = subprocess.Popen(["node", str(root / "tests" / "js" / "values-world.mjs"), host],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)
        hello = self._line()
        self.host = host
        self.org: str = hello["org"]
        self.pair: str = hello["pair"]
        self.relays: dict[str, str] = hello["relays"]
        self.keys: dict[str, str] = hello["keys"]
        self.meter: str = hello["meter"]

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the values world ended"
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def step(self, step: dict[str, Any]) -> Optional[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(step) + "\n")
        self.proc.stdin.flush()
        return self._line().get("got")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def render_value(v: Any) -> str:
    if v is None:
        return "absent"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return json.dumps(v)


def render_balance(b: Optional[float]) -> str:
    if b is None:
        return "?"
    return str(int(b)) if float(b).is_integer() else repr(b)


def values_hosts() -> list[str]:
    if WORKERS_ONLY:
        return ["workers"]
    root = Path(ROWS).resolve().parents[2]
    consumer = os.environ.get("CONSUMER", "")
    workers = (consumer and (Path(consumer) / "node_modules" / "polar-license").is_dir()
               and (root / "scripts" / "npm" / "node_modules" / ".bin" / "workerd").is_file())
    return ["native", "workers"] if workers else ["native"]


def play_values(rows: list[dict[str, Any]], host: str, cache: Path) -> list[tuple[str, str, str, list[str]]]:
    """The values rows on ``host``: (id@host, expected, got, failures) each."""
    ours = [r for r in rows if r.get("world") == "values" and host in r["hosts"]]
    try:
        world = World(host)
    except Exception as e:  # noqa: BLE001 - the world's failure is every row's
        return [(f"{r['id']}@{host}", "", "", [f"the values world: {e}"]) for r in ours]
    apps: dict[str, Licensing] = {}

    def app(url: str) -> Licensing:
        if url not in apps:
            apps[url] = Licensing(world.org, base_url=url, cache_dir=cache / f"app-{len(apps)}",
                                  relay_keys=world.pair, revalidate_after=0,
                                  machine_binding=False)
        return apps[url]

    def value(url: str, key: str, name: str) -> str:
        app(url).check(key)
        return render_value(app(url).entitlement(name))

    def relay_check(url: str, key: str) -> str:
        report = app(url).check(key)
        if report.licensed:
            return "licensed"
        code = report.reason.value if report.reason is not None else "none"
        stopped = report.stopped
        if stopped is None:
            return code
        until = "" if stopped.until is None else f" until={int(stopped.until.timestamp())}"
        return f"{code} · {stopped.kind.value}{until}"

    def usage(url: str, key: str, units: float, report_id: str) -> str:
        try:
            r = app(url).record_usage(world.meter, units, relay=url, key=key, id=report_id)
        except LicenseError as e:
            if e.code.value == "credits_exhausted":
                return f"credits_exhausted balance:{render_balance(getattr(e, 'balance', None))}"
            return str(e.code.value)
        return f"{'duplicate' if r.duplicate else 'recorded'} balance:{render_balance(r.balance)}"

    out: list[tuple[str, str, str, list[str]]] = []
    try:
        for row in ours:
            failures: list[str] = []
            want_cell = got_cell = ""
            cell = next((i for i, s in enumerate(row["steps"]) if s.get("cell")), -1)
            for i, s in enumerate(row["steps"]):
                expect: dict[str, Any] = s.get("expect") or {}
                want: Optional[str] = expect.get("verdict")
                url = world.relays[s.get("relay", "plain")]
                key = world.keys.get(s.get("key", ""), "")
                got: Optional[str]
                if s["do"] == "usage":
                    got = usage(url, key, s["units"], s["id"])
                elif s["do"] in ("value", "relay_check"):
                    deadline = time.monotonic() + POLL
                    while True:
                        got = value(url, key, s["name"]) if s["do"] == "value" else relay_check(url, key)
                        if got == want or time.monotonic() > deadline:
                            break
                        time.sleep(0.05)
                else:
                    try:
                        got = world.step(s)
                    except RuntimeError as e:
                        failures.append(f"step {i} ({s['do']}): {e}")
                        break
                if want is None:
                    continue
                if got != want:
                    failures.append(f"step {i} ({s['do']}): expected `{want}`, got `{got}`")
                if cell in (-1, i):
                    want_cell, got_cell = want, got or ""
            out.append((f"{row['id']}@{host}", want_cell, got_cell, failures))
    finally:
        world.close()
    return out


def test_every_seller_row(tmp_path: Path) -> None:
    table: list[dict[str, Any]] = json.loads(Path(ROWS).read_text(encoding="utf-8"))["rows"]
    rows = [] if WORKERS_ONLY else [r for r in table if "world" not in r]
    assert WORKERS_ONLY or len(rows) >= 11, f"the table lost rows: {len(rows)}"
    lines = ["face\trow\texpected\tgot\tresult"]
    failures: list[str] = []
    found: list[tuple[str, str, str, list[str]]] = [
        (row["id"], *play(row, tmp_path / row["id"])) for row in rows]
    if CLI:
        for host in values_hosts():
            found += play_values(table, host, tmp_path / f"values-{host}")
    assert found, "no rows played (the values rows need POLAR_LICENSE_CLI)"
    for row_id, want, got, failed in found:
        ok = not failed and want != ""
        lines.append(f"python\t{row_id}\t{want}\t{got}\t{'pass' if ok else 'FAIL'}")
        failures += [f"{row_id}: {why}" for why in failed]
        if want == "":
            failures.append(f"{row_id}: no expected check")
    if OUT:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        file = Path(OUT) / "python.tsv"
        if WORKERS_ONLY and file.is_file():
            # The file's rows of other ids kept, in their order; ours replace any of the same id.
            ours = {row_id for row_id, *_ in found}
            before = file.read_text(encoding="utf-8").splitlines()[1:]
            kept = [line for line in before if line and (line.split("\t") + [""])[1] not in ours]
            lines = lines[:1] + kept + lines[1:]
        file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert failures == [], "\n".join(failures)
