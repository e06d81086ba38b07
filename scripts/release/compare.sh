#!/usr/bin/env bash
# Two release outputs compared (docs/releasing.md, "reproducible"): `bash
# scripts/release/compare.sh DIR_A DIR_B` diffs their SHA256SUMS and, for each file that differs,
# says where: an archive's members by name and SHA-256 (tar.gz, .crate, .tgz, .whl), else the
# bytes (cmp). Exit 0 when SHA256SUMS is the same.
set -u -o pipefail
a="${1:?usage: compare.sh DIR_A DIR_B}"
b="${2:?usage: compare.sh DIR_A DIR_B}"
if cmp -s "$a/SHA256SUMS" "$b/SHA256SUMS"; then
    echo "SHA256SUMS: the same ($(wc -l <"$a/SHA256SUMS") files)"
    exit 0
fi
echo "SHA256SUMS differ:"
diff "$a/SHA256SUMS" "$b/SHA256SUMS"
# members ARCHIVE: each member's name and SHA-256, sorted.
members() {
    python3 - "$1" <<'PY'
import hashlib, sys, tarfile, zipfile
p = sys.argv[1]
if p.endswith(('.tar.gz', '.crate', '.tgz')):
    with tarfile.open(p) as t:
        for m in sorted(t.getmembers(), key=lambda m: m.name):
            data = t.extractfile(m).read() if m.isfile() else b''
            print(m.name, m.mode, m.uid, m.gid, m.mtime, hashlib.sha256(data).hexdigest()[:16])
elif p.endswith('.whl'):
    with zipfile.ZipFile(p) as z:
        for i in sorted(z.infolist(), key=lambda i: i.filename):
            print(i.filename, i.date_time, hashlib.sha256(z.read(i)).hexdigest()[:16])
PY
}
diff <(sed 's/^[0-9a-f]* *//' "$a/SHA256SUMS" | sort) <(sed 's/^[0-9a-f]* *//' "$b/SHA256SUMS" | sort) >/dev/null ||
    echo "(the file lists differ)"
join -j 2 <(sort -k2 "$a/SHA256SUMS") <(sort -k2 "$b/SHA256SUMS") | while read -r f ha hb; do
    [[ "$ha" == "$hb" ]] && continue
    echo
    echo "== $f"
    case "$f" in
        *.tar.gz | *.crate | *.tgz | *.whl) diff <(members "$a/$f") <(members "$b/$f") | head -n 20 ;;
        *) cmp "$a/$f" "$b/$f" | head -n 3; diff <(head -c 4000 "$a/$f") <(head -c 4000 "$b/$f") 2>/dev/null | head -n 10 ;;
    esac
done
exit 1
