#!/usr/bin/env python3
"""Refreshes src/domain/mic-list.csv.gz, isinbeat's snapshot of the ISO 10383 MIC list.

Usage:
    python3 benches/refresh_mic_list.py ISO10383_MIC.csv YYYY-MM-DD

ISO10383_MIC.csv is the list as the registration authority publishes it (the "MIC list in
CSV" download of the ISO 10383 maintenance site, one row per MIC with the columns MIC,
OPERATING MIC, MARKET NAME-INSTITUTION DESCRIPTION, ISO COUNTRY CODE (ISO 3166), STATUS, ...);
YYYY-MM-DD is the date of that publication, kept in the snapshot's first line and shown in
the README. Only the columns isinbeat shows are kept: MIC, operating MIC, name, country,
status. Standard library only; the output is deterministic (sorted by MIC, gzip without a
timestamp), so a refresh that changes nothing changes no byte.
"""

import csv
import datetime
import gzip
import io
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent.parent / "src" / "domain" / "mic-list.csv.gz"
WANTED = {
    "mic": "MIC",
    "operating_mic": "OPERATING MIC",
    "name": "MARKET NAME-INSTITUTION DESCRIPTION",
    "country": "ISO COUNTRY CODE",
    "status": "STATUS",
}


def main(source: str, published: str) -> None:
    datetime.date.fromisoformat(published)
    with open(source, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip().upper() for h in next(reader)]
        columns = {}
        for key, title in WANTED.items():
            found = [i for i, h in enumerate(header) if h.startswith(title)]
            if not found:
                sys.exit(f"{source}: no column {title!r} in {header}")
            columns[key] = found[0]
        rows = []
        for row in reader:
            if not row or not row[columns["mic"]].strip():
                continue
            rows.append([row[columns[k]].strip() for k in WANTED])
    rows.sort(key=lambda r: r[0])
    text = io.StringIO()
    text.write(f"# ISO 10383 MIC list published {published}; {len(rows)} MICs\n")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(list(WANTED))
    writer.writerows(rows)
    with open(OUT, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(text.getvalue().encode("utf-8"))
    print(f"{OUT}: {len(rows)} MICs, published {published}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
