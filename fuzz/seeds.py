#!/usr/bin/env python3
"""Writes the hand-made seeds fuzz/seeds/<target>/ from fuzz/seeds/bodies/ (idempotent).

* parse_response: the response bodies of docs/polar-api.md §6 (doc_*.json, doc_errors.json)
  and real emulator answers (emu_*.json), each with its status and operation, in the
  ResponseInput byte layout of fuzz/src/lib.rs:
  [op % 3][status u16 big-endian][header count % 4]([name index][len][value])*[body...]
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
    for path in sorted(SEEDS.glob("record_*.json")):
        write("cache_decode", path.stem, path.read_bytes().strip())
    print("seeds written to", CORPUS)


if __name__ == "__main__":
    main()
