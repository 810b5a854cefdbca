#!/usr/bin/env bash
# Rebuilds the bundled demo corpus examples/data/kjv-*.jsonl.gz from Debian's bible-kjv-text package
# (the King James Version, public domain: see examples/data/LICENSE-DATA.md). One document per chapter,
# in Dolma's raw format (id, text, source, added, created, metadata). Revelation is held out as the
# validation file. Output is byte-for-byte reproducible (gzip mtime 0).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -qq bible-kjv-text bible-kjv >/dev/null 2>&1)
for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/root"; done
"$tmp/root/usr/bin/bible" -p "$tmp/root/usr/lib" -f "Gen1:1-Rev22:21" > "$tmp/kjv.txt"
python3 - "$tmp/kjv.txt" examples/data <<'PY'
import gzip, io, json, re, sys
from collections import OrderedDict

verses = OrderedDict()
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$", line.rstrip("\n"))
    if not m:
        raise SystemExit(f"unexpected line: {line!r}")
    book, chapter, _, text = m.groups()
    verses.setdefault((book, int(chapter)), []).append(text)

def write(name, chapters):
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for (book, chapter), texts in chapters:
            doc = {
                "id": f"kjv-{book}-{chapter}",
                "text": " ".join(texts),
                "source": "bible-kjv-text",
                "added": "2026-11-27T00:00:00Z",
                "created": "1611-01-01T00:00:00Z",
                "metadata": {"book": book, "chapter": chapter},
            }
            gz.write((json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8"))
    open(f"{sys.argv[2]}/{name}", "wb").write(raw.getvalue())
    print(f"{name}: {len(chapters)} documents, {len(raw.getvalue())} bytes")

items = list(verses.items())
write("kjv-train.jsonl.gz", [i for i in items if i[0][0] != "Rev"])
write("kjv-validation.jsonl.gz", [i for i in items if i[0][0] == "Rev"])
PY
