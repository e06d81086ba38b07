#!/usr/bin/env python3
"""The Windows static library's raw-dylib names made the same from one build to the next
(scripts/release.sh's win_same, docs/releasing.md "reproducible"):

    python3 scripts/release/win-names.py LIBRARY.a...

rustc writes the import libraries of its raw-dylib imports (std's, `windows-link`'s) into a
temporary directory of a random name inside the build directory, and names their symbols after
that path: `_head_<path>_rustcXXXXXX_kernel32_dll_imports_lib` and
`__<path>_rustcXXXXXX_kernel32_dll_imports_lib_iname`. The static library's import-library
members define and use them, so no two builds, and no two checkouts, gave the same library (the
CLI and the DLL are stripped of their symbol tables instead). Each such name becomes
`_head_polar_license_N_kernel32_dll_imports_lib` (and `__polar_license_N_…_iname`), N the
order in which the file first names that directory: the same names a build's import library
uses stay one name, two directories stay two.

The library is unpacked member by member, in order (its import libraries' members share names:
`kernel32.dllt.o` once per directory), each member that holds such a name renamed by objcopy (it
refuses the section-less `.dwo` members, which hold none), and packed again in the same order by
MinGW's ar in deterministic mode, with its symbol index. Prints what it renamed; exit 1 on a
tool's failure or a name left.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

PREFIX = os.environ.get("MINGW_PREFIX", "x86_64-w64-mingw32-")
NAME = re.compile(
    r"^(_head_|__)([A-Za-z0-9_]*_rustc[A-Za-z0-9]{6}_)([A-Za-z0-9_]+_dll_imports_lib)(_iname)?$"
)


def symbols(path):
    """The symbol names of `path` in the order it holds them (nm -p: no sorting)."""
    run = subprocess.run([PREFIX + "nm", "-p", path], capture_output=True, text=True)
    # (nm says "no symbols" of a member without any and exits 0; a file it cannot read fails.)
    if run.returncode != 0 and not run.stdout:
        sys.exit(f"win-names: {PREFIX}nm {path}: {run.stderr.strip()}")
    return [line.split()[-1] for line in run.stdout.splitlines() if line.strip() and not line.endswith(":")]


def renaming(names):
    """Each raw-dylib name of `names` and its new name, directories numbered by first sight."""
    dirs, new = {}, {}
    for name in names:
        m = NAME.match(name)
        if m is None or name in new:
            continue
        n = dirs.setdefault(m.group(2), len(dirs) + 1)
        new[name] = f"{m.group(1)}polar_license_{n}_{m.group(3)}{m.group(4) or ''}"
    return new


def objcopy(path, new, workdir):
    mapping = os.path.join(workdir, "names.map")
    with open(mapping, "w", encoding="ascii") as f:
        f.writelines(f"{old} {name}\n" for old, name in new.items())
    run = subprocess.run([PREFIX + "objcopy", "-D", f"--redefine-syms={mapping}", path], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"win-names: {PREFIX}objcopy {path}: {run.stderr.strip()}")


def members(path):
    """The members of the GNU archive `path` in order: (name, bytes); its index and long-name
    table left out (ar writes them again)."""
    data = open(path, "rb").read()
    if not data.startswith(b"!<arch>\n"):
        sys.exit(f"win-names: {path}: not an ar archive")
    at, longnames, out = 8, b"", []
    while at < len(data):
        head = data[at : at + 60]
        name, size = head[:16].decode("ascii").rstrip(), int(head[48:58].decode("ascii"))
        body = data[at + 60 : at + 60 + size]
        at += 60 + size + (size & 1)
        if name in ("/", "/SYM64/"):
            continue
        if name == "//":
            longnames = body
            continue
        if name.startswith("/") and name[1:].isdigit():
            start = int(name[1:])
            name = longnames[start : longnames.index(b"/\n", start)].decode("ascii")
        else:
            name = name.rstrip("/")
        out.append((name, body))
    return out


def archive(path, workdir):
    new = renaming(symbols(path))
    files = []
    for i, (name, body) in enumerate(members(path)):
        d = os.path.join(workdir, f"{i:06d}")
        os.mkdir(d)
        member = os.path.join(d, name)
        with open(member, "wb") as f:
            f.write(body)
        mine = {old: n for old, n in new.items() if old in body.decode("latin-1")}
        if mine:
            objcopy(member, mine, d)
        files.append(member)
    packed = os.path.join(workdir, "packed.a")
    run = subprocess.run([PREFIX + "ar", "qcsD", packed, *files], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"win-names: {PREFIX}ar: {run.stderr.strip()}")
    shutil.move(packed, path)
    return new


def main(paths):
    if not paths:
        sys.exit("usage: win-names.py FILE...")
    for path in paths:
        if not path.endswith(".a"):
            sys.exit(f"win-names: {path}: not a static library (.a)")
        with tempfile.TemporaryDirectory() as workdir:
            new = archive(path, workdir)
        left = [s for s in symbols(path) if NAME.match(s) and "_rustc" in s]
        if left:
            sys.exit(f"win-names: {path}: {len(left)} names left, e.g. {left[0]}")
        dirs = len({n.split("_")[4] for n in new.values() if n.startswith("_head_")})
        print(f"{path}: {len(new)} names of {dirs} import-library directories renamed")


if __name__ == "__main__":
    main(sys.argv[1:])
