"""Load a GLEIF ISIN-LEI zip (one CSV member, header LEI,ISIN) and optionally a Xetra
instruments CSV (names) into the Isin table, the same files isinbeat imports."""
import csv
import io
import time
import zipfile

from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone

from isins.models import Isin

BATCH = 5000


def read_names(path):
    """ISIN -> name from a Xetra file: 'Market:;XETR', then 'Instrument;ISIN;Currency;MIC Code'."""
    names = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        next(f)  # the "Market:;XETR" line
        reader = csv.reader(f, delimiter=";")
        header = next(reader)
        name_col, isin_col = header.index("Instrument"), header.index("ISIN")
        for row in reader:
            if len(row) > isin_col:
                names[row[isin_col]] = row[name_col]
    return names


class Command(BaseCommand):
    help = "Load ISINs from a GLEIF-format zip (and names from a Xetra-format CSV)."

    def add_arguments(self, parser):
        parser.add_argument("gleif_zip")
        parser.add_argument("names_csv", nargs="?")

    def handle(self, gleif_zip, names_csv=None, **options):
        start = time.monotonic()
        # Read the names first: at most ~1 M of them, a dict is fine.
        names = read_names(names_csv) if names_csv else {}
        now = timezone.now()
        rows = 0
        batch = []

        def flush():
            # ignore_conflicts: the file may list an ISIN twice; the first one wins.
            Isin.objects.bulk_create(batch, ignore_conflicts=True)
            batch.clear()

        with zipfile.ZipFile(gleif_zip) as zf:
            member = next(n for n in zf.namelist() if n.lower().endswith(".csv"))
            with zf.open(member) as raw:
                reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
                header = next(reader)
                lei_col, isin_col = header.index("LEI"), header.index("ISIN")
                for row in reader:
                    isin = row[isin_col]
                    batch.append(
                        Isin(
                            isin=isin,
                            name=names.get(isin),
                            lei=row[lei_col] or None,
                            country=isin[:2],
                            active=True,
                            first_seen=now,
                        )
                    )
                    rows += 1
                    if len(batch) >= BATCH:
                        flush()
        if batch:
            flush()
        elapsed = time.monotonic() - start
        # Fresh statistics so the query planner sees the loaded table, as it would in a
        # database that has lived a while.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self.stdout.write(
            f"{rows} rows ({len(names)} names read) in {elapsed:.1f} s = {rows / elapsed:,.0f} rows/s"
        )
