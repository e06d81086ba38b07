#!/usr/bin/env python3
"""Writes the hand-made seeds fuzz/seeds/<target>/ from fuzz/seeds/bodies/ (idempotent).

* parse_response: the response bodies of docs/polar-api.md §6 (doc_*.json, doc_errors.json)
  and real emulator answers (emu_*.json), each with its status and operation, in the
  ResponseInput byte layout of crates/fuzz-bodies/src/lib.rs:
  [op % 3][status u16 big-endian][header count % 4]([name index][len][value])*[body...]
* one_answer: the same answers, about polar_license_testkit::answers' key, organization and
  ids (the documentation's and the emulator's replaced, so that a 200 can be a grant), in the
  answer_case layout of crates/fuzz-bodies/src/lib.rs:
  [op % 3][flags: 1 = the activation asked][status u16 big-endian]
  [date length + 1, or 0][date][retry-after length + 1, or 0][retry-after][body...]
* rules_input: request bodies for polar_license_rules::check_body, good and hostile (nesting
  past the parser's limit up to the relay's 64 KiB body cap, the issue #62 bodies; an object of
  keys that fills the cap), in the layout [op % 3][content-type % 4][body...].
* cache_decode: real cache record lines (record_*.json, from a Licensing over the emulator),
  which the target seals with the right MAC.

scripts/fuzz.sh gives libFuzzer fuzz/corpus/<target>/ (what the fuzzer found, minimized with
`cargo fuzz cmin`) and these seed directories, which stay as they are.
"""
import hashlib, json, pathlib

HERE = pathlib.Path(__file__).resolve().parent
SEEDS, CORPUS = HERE / "seeds" / "bodies", HERE / "seeds"
OPS = {"validate": 0, "activate": 1, "deactivate": 2}
RETRY_AFTER, DATE = 0, 1


def response(op, status, body, headers=()):
    out = bytes([op]) + status.to_bytes(2, "big") + bytes([len(headers) % 4])
    for index, value in headers:
        v = value.encode()[:255]
        out += bytes([index, len(v)]) + v
    return out + body


# crates/testkit/src/answers.rs: KEY, ORG, LICENSE_ID, ACTIVATION, BENEFIT, CUSTOMER.
TESTKIT = {
    "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415": "FACES-50B22C51-07BD-4160-A61E-19B6CC6ED415",
    "DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A": "FACES-50B22C51-07BD-4160-A61E-19B6CC6ED415",
    "d2fcbff8-108b-411e-bf2b-6383e0a8802d": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
    "f7d9ba8a-dd63-4db8-bb8b-015006335825": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
    "21bf892b-2e46-4f50-8060-8fdaf02aa482": "3f6d2a1b-8c4e-4f5a-9b7c-1d2e3f4a5b6c",
    "45f87221-45ae-4f65-8dbd-073318bc6372": "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d",
    "854fa59b-860f-4262-a6ac-ae0388a7f579": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d",
}


def answer(op, asked, status, body, headers=()):
    for old, new in TESTKIT.items():
        body = body.replace(old.encode(), new.encode())
    out = bytes([op, int(asked)]) + status.to_bytes(2, "big")
    values = dict(headers)
    for index in (DATE, RETRY_AFTER):
        if index in values:
            v = values[index].encode()[:254]
            out += bytes([len(v) + 1]) + v
        else:
            out += bytes([0])
    return out + body


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def main():
    date = (DATE, "Sun, 22 Nov 2026 00:48:16 GMT")
    doc_act = json.loads((SEEDS / "doc_activate_200.json").read_text())
    # A complete docs/polar-api.md §6.2 validate: the §6.1 license key, after one more validation,
    # with the activation.
    val = dict(doc_act["license_key"], usage=8, validations=42,
               last_validated_at="2026-08-22T09:30:12.551023Z")
    val["activation"] = {k: v for k, v in doc_act.items() if k != "license_key"}
    bodies = [
        ("validate", 200, "doc_validate_200", json.dumps(val).encode(), [date]),
        ("validate", 200, "doc_validate_200_abbreviated",
         (SEEDS / "doc_validate_200_abbreviated.json").read_bytes(), []),
        ("activate", 200, "doc_activate_200", (SEEDS / "doc_activate_200.json").read_bytes(), []),
        ("validate", 200, "emu_validate_200", (SEEDS / "emu_validate_200.json").read_bytes(), [date]),
        ("activate", 200, "emu_activate_200", (SEEDS / "emu_activate_200.json").read_bytes(), []),
        ("validate", 422, "emu_validate_422", (SEEDS / "emu_validate_422.json").read_bytes(), []),
        ("deactivate", 204, "doc_deactivate_204", b"", [date]),
        ("validate", 429, "doc_429", b"", [(RETRY_AFTER, "60")]),
        ("activate", 500, "doc_500", b"Internal Server Error", []),
    ]
    for i, (endpoint, what, status, body) in enumerate(json.loads((SEEDS / "doc_errors.json").read_text())):
        op = next((OPS[e] for e in OPS if endpoint.startswith(e)), 0)
        bodies.append((list(OPS)[op], status, f"doc_error_{i:02}_{status}", body.encode(), []))
    for op, status, name, body, headers in bodies:
        write("parse_response", name, response(OPS[op], status, body, headers))
        write("one_answer", name, answer(OPS[op], False, status, body, headers))
        if name == "doc_validate_200":
            write("one_answer", name + "_asked", answer(OPS[op], True, status, body, headers))
    org = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10"
    good = {"key": "K", "organization_id": org, "activation_id": org, "label": "l",
            "conditions": {"major": 1, "os": "linux"}, "meta": {"host": "h"}}
    cap = 64 * 1024
    head = json.dumps(dict(good, conditions={})).encode()[:-2] + b'{"a":'
    rules = [
        ("good", json.dumps(good).encode()),
        ("dup_keys", b'{"key":"A","key":"K","organization_id":"%s","key":"B"}' % org.encode()),
        ("deep_128", b"[" * 128 + b"]" * 128),
        ("deep_129", b"[" * 129 + b"]" * 129),
        ("deep_10000_arrays", b"[" * 10_000),
        ("deep_10000_objects", b'{"a":' * 10_000),
        ("deep_conditions_cap", head + b"[" * (cap - len(head))),
        ("keys_cap", b"{" + b",".join(b'"%x":0' % i for i in range(7_700)) + b"}"),
    ]
    for op in OPS.values():
        for name, body in rules:
            # The large ones once (validate): the fuzzer's mutations reach the other routes.
            if op == 0 or len(body) < 1024:
                write("rules_input", f"{list(OPS)[op]}_{name}", bytes([op, 1]) + body)
    for path in sorted(SEEDS.glob("record_*.json")):
        write("cache_decode", path.stem, path.read_bytes().strip())
    print("seeds written to", CORPUS)


if __name__ == "__main__":
    main()
