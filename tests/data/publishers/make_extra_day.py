#!/usr/bin/env python3
"""Writes the project's own fifth FIRDS delta day, 2025-01-09, into esma/ (see EXTRA.md).

    python3 tests/data/publishers/make_extra_day.py

Stdlib only and deterministic: the zip's member has a fixed date, and the list files are the
2025-01-08 ones with that day's date, file, id, version, timestamps and checksum replaced, so
they keep exactly the shape of the shared fixtures' lists. Nothing of the shared fixtures is
changed; the script refuses to run if the 2025-01-08 files are not as it expects them.
"""

import hashlib
import pathlib
import zipfile

ESMA = pathlib.Path(__file__).resolve().parent / "esma"
DAY = "2025-01-09"
BASE = "DLTINS_20250109_01of01"

# The new instrument: one equity on one venue.
NEW_ISIN_BODY = "DE000A40LWK"
NEW_MIC = "XETA"
NEW_NAME = "Lumen Werkstoffe AG"
NEW_LEI_BODY = "529900LUMENW3RK0AG"
# The modified record: a single-venue equity of the full set that no fixture delta touches,
# renamed; every other attribute stays as the full set has it.
MODIFIED_ISIN = "AT0043600456"
MODIFIED_MIC = "CEUX"
OLD_NAME = "Vertex Systems AG"
MODIFIED_NAME = "Vertex Systems Holding AG"


def isin_with_check_digit(body):
    """`body` (11 characters) and its ISIN check digit (letters as 10..35, then Luhn)."""
    digits = "".join(str(int(c, 36)) for c in body)
    for check in "0123456789":
        total = 0
        for i, d in enumerate(reversed(digits + check)):
            n = int(d) * (2 if i % 2 else 1)
            total += n // 10 + n % 10
        if total % 10 == 0:
            return body + check
    raise AssertionError(body)


def lei_with_check_digits(body):
    """`body` (18 characters) and its two ISO 17442 check digits (ISO 7064 MOD 97-10)."""
    number = int("".join(str(int(c, 36)) for c in body + "00"))
    return f"{body}{98 - number % 97:02d}"


NEW_ISIN = isin_with_check_digit(NEW_ISIN_BODY)
NEW_LEI = lei_with_check_digits(NEW_LEI_BODY)

ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<BizData xmlns="urn:iso:std:iso:20022:tech:xsd:head.003.001.01" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="urn:iso:std:iso:20022:tech:xsd:head.003.001.01 head.003.001.01.xsd">'
    '<Hdr><AppHdr xmlns="urn:iso:std:iso:20022:tech:xsd:head.001.001.01" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="urn:iso:std:iso:20022:tech:xsd:head.001.001.01 head.001.001.01_ESMAUG_1.0.0.xsd">'
    "<Fr><OrgId><Id><OrgId><Othr><Id>EU</Id></Othr></OrgId></Id></OrgId></Fr>"
    "<To><OrgId><Id><OrgId><Othr><Id>Public</Id></Othr></OrgId></Id></OrgId></To>"
    f"<BizMsgIdr>{BASE}</BizMsgIdr><MsgDefIdr>auth.036.001.03</MsgDefIdr>"
    "<CreDt>2025-01-09T01:21:14.203Z</CreDt></AppHdr></Hdr>"
    '<Pyld><Document xmlns="urn:iso:std:iso:20022:tech:xsd:auth.036.001.03" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="urn:iso:std:iso:20022:tech:xsd:auth.036.001.03 auth.036.001.03_ESMAUG_DLTINS_1.2.0.xsd">'
    "<FinInstrmRptgRefDataDltaRpt><RptHdr><RptgNtty><NtlCmptntAuthrty>EU</NtlCmptntAuthrty></RptgNtty>"
    f"<RptgPrd><Dt>{DAY}</Dt></RptgPrd></RptHdr>"
    "{records}"
    "</FinInstrmRptgRefDataDltaRpt></Document></Pyld></BizData>"
)

NEW_RECORD = (
    "<FinInstrm><NewRcrd><FinInstrmGnlAttrbts>"
    f"<Id>{NEW_ISIN}</Id><FullNm>{NEW_NAME}</FullNm><ShrtNm>LUMEN WERKSTOF/SHS</ShrtNm>"
    "<ClssfctnTp>ESVUFR</ClssfctnTp><NtnlCcy>EUR</NtnlCcy><CmmdtyDerivInd>false</CmmdtyDerivInd>"
    f"</FinInstrmGnlAttrbts><Issr>{NEW_LEI}</Issr>"
    f"<TradgVnRltdAttrbts><Id>{NEW_MIC}</Id><IssrReq>true</IssrReq>"
    "<AdmssnApprvlDtByIssr>2025-01-09T00:00:00Z</AdmssnApprvlDtByIssr>"
    "<ReqForAdmssnDt>2025-01-09T00:00:00Z</ReqForAdmssnDt>"
    "<FrstTradDt>2025-01-09T08:00:00Z</FrstTradDt></TradgVnRltdAttrbts>"
    "<TechAttrbts><RlvntCmptntAuthrty>DE</RlvntCmptntAuthrty><PblctnPrd><FrDt>2025-01-09</FrDt></PblctnPrd>"
    f"<RlvntTradgVn>{NEW_MIC}</RlvntTradgVn></TechAttrbts></NewRcrd></FinInstrm>"
)

def full_set_record(isin, mic):
    """The inside of the RefData of (isin, mic) in the fixtures' full set, or None."""
    for path in sorted(ESMA.glob("FULINS_*.zip")):
        with zipfile.ZipFile(path) as archive:
            text = archive.read(archive.namelist()[0]).decode("utf-8")
        for chunk in text.split("<RefData>")[1:]:
            if f"<Id>{isin}</Id>" in chunk and f"<TradgVnRltdAttrbts><Id>{mic}</Id>" in chunk:
                return chunk.split("</RefData>")[0]
    return None


def write_zip():
    """The zip of the day, as the fixtures' zips are made (one deflated member)."""
    # The full set's record of the modified key with the new name and this day's publication;
    # every other attribute stays as the full set has it.
    modified = full_set_record(MODIFIED_ISIN, MODIFIED_MIC)
    assert modified is not None, f"{MODIFIED_ISIN} on {MODIFIED_MIC} is not in the full set"
    for old, new in [
        (f"<FullNm>{OLD_NAME}</FullNm>", f"<FullNm>{MODIFIED_NAME}</FullNm>"),
        ("<PblctnPrd><FrDt>2023-12-25</FrDt></PblctnPrd>", f"<PblctnPrd><FrDt>{DAY}</FrDt></PblctnPrd>"),
    ]:
        assert modified.count(old) == 1, f"the full set's {MODIFIED_ISIN} has no {old}"
        modified = modified.replace(old, new)
    modified_record = f"<FinInstrm><ModfdRcrd>{modified}</ModfdRcrd></FinInstrm>"
    assert full_set_record(NEW_ISIN, NEW_MIC) is None, f"{NEW_ISIN} is in the full set already"
    xml = ENVELOPE.replace("{records}", NEW_RECORD + modified_record).encode("utf-8")
    member = zipfile.ZipInfo(f"{BASE}.xml", date_time=(2025, 1, 4, 6, 0, 0))
    member.compress_type = zipfile.ZIP_DEFLATED
    member.create_system = 3
    member.external_attr = 0o644 << 16
    path = ESMA / f"{BASE}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, xml)
    return path.read_bytes()


def write_lists(zipped):
    """solr-2025-01-09.{xml,json}: the 2025-01-08 lists moved to this day and file."""
    replacements = [
        ("DLTINS_20250108_01of01.zip", f"{BASE}.zip"),
        ("1f9c62fb472151ed6a164d70cb0cc1a0", hashlib.md5(zipped).hexdigest()),
        ("98421", "98422"),
        # Each document's _version_ is the one before plus 7919, as in the fixtures.
        ("1820514412345693253", "1820514412345709091"),
        ("1820514412345685334", "1820514412345701172"),
        ("2025-01-08T07:10:27.421Z", "2025-01-09T07:10:41.422Z"),
        ("2025-01-08T07:11:34.422Z", "2025-01-09T07:11:48.423Z"),
        ("2025-01-08T07:03:54Z", "2025-01-09T07:04:08Z"),
        ("2025-01-08", DAY),
    ]
    for extension in ("xml", "json"):
        text = (ESMA / f"solr-2025-01-08.{extension}").read_text(encoding="utf-8")
        for old, new in replacements:
            assert old in text, f"solr-2025-01-08.{extension} has no {old}"
            text = text.replace(old, new)
        (ESMA / f"solr-{DAY}.{extension}").write_text(text, encoding="utf-8")


def main():
    zipped = write_zip()
    write_lists(zipped)
    print(f"{BASE}.zip: {len(zipped)} bytes, md5 {hashlib.md5(zipped).hexdigest()}")
    print(f"new: {NEW_ISIN} on {NEW_MIC} ({NEW_NAME}, issuer {NEW_LEI})")
    print(f"modified: {MODIFIED_ISIN} on {MODIFIED_MIC}, name {OLD_NAME!r} -> {MODIFIED_NAME!r}")


if __name__ == "__main__":
    main()
