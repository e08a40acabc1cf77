//! Synthetic ISIN lists made by isinbeat itself: the bundled sample a new installation imports
//! (a FIRDS-shaped full file, so there are names, CFI codes, currencies and venues to browse
//! without internet), and files of any size for the import benchmarks (GLEIF's ISIN-to-LEI
//! layout and FIRDS full files). Deterministic: the same arguments give the same bytes.

use std::io::{self, Write};

use crate::domain::{Isin, Lei};

/// Instruments (ISINs) in the bundled sample; each trades on one to three venues.
pub const SAMPLE_ISINS: u64 = 3_000;

/// The source URL that names the bundled sample.
pub const SAMPLE_URL: &str = "bundled:sample";

/// Country prefixes in roughly the proportions of GLEIF's file, per 100 rows.
const PREFIXES: &[(&str, u64)] = &[
    ("DE", 46),
    ("US", 25),
    ("GB", 7),
    ("CH", 7),
    ("NL", 5),
    ("FR", 3),
    ("IT", 2),
    ("SE", 2),
    ("ES", 1),
    ("AT", 1),
    ("LU", 1),
];

/// One row per this many ISINs shares an LEI, like the real file.
const ROWS_PER_LEI: u64 = 92;

/// Writes `rows` rows (plus the `LEI,ISIN` header). With `changed_every`, every such row has
/// another LEI than in the file without it (a day with changes, for re-import benchmarks).
pub fn write_gleif_csv(out: &mut impl Write, rows: u64, changed_every: Option<u64>) -> io::Result<()> {
    out.write_all(b"LEI,ISIN\n")?;
    for index in 0..rows {
        let changed = changed_every.is_some_and(|every| every > 0 && index % every == every - 1);
        let lei = lei_for(index / ROWS_PER_LEI + u64::from(changed) * 1_000_000_007)?;
        let isin = isin_for(index)?;
        writeln!(out, "{},{}", lei.as_str(), isin.as_str())?;
    }
    Ok(())
}

/// The `index`-th synthetic ISIN: distinct for every index below a billion.
pub fn isin_for(index: u64) -> io::Result<Isin> {
    let total: u64 = PREFIXES.iter().map(|(_, weight)| weight).sum();
    let mut slot = index % total;
    let prefix = PREFIXES
        .iter()
        .find(|(_, weight)| {
            if slot < *weight {
                true
            } else {
                slot -= weight;
                false
            }
        })
        .map_or("DE", |(prefix, _)| prefix);
    // Multiplying by a number coprime with 10⁹ permutes 0..10⁹: distinct, but not in order.
    let nsin = (index.wrapping_mul(738_219_631)) % 1_000_000_000;
    Isin::with_check_digit(&format!("{prefix}{nsin:09}")).map_err(|e| io::Error::other(e.to_string()))
}

/// Words of the synthetic names: ten of each kind, so names repeat like real ones do.
pub const FIRST: [&str; 10] =
    ["Alpine", "Baltic", "Cobalt", "Delta", "Emerald", "Falcon", "Granite", "Harbor", "Ivory", "Juniper"];
pub const SECOND: [&str; 10] = [
    "Orchard", "Summit", "Meridian", "Beacon", "Lantern", "Quarry", "Willow", "Pioneer", "Saffron", "Tundra",
];
pub const KIND: [&str; 10] =
    ["Holding", "Capital", "Energy", "Bank", "Telecom", "Pharma", "Motors", "Foods", "Realty", "Logistics"];
pub const FORM: [&str; 10] = ["AG", "SE", "PLC", "Inc.", "N.V.", "S.A.", "Corp.", "Ltd.", "ASA", "Oyj"];

/// The `index`-th synthetic instrument name, e.g. "Cobalt Beacon Energy SE".
pub fn name_for(index: u64) -> String {
    // Mixing the index spreads each word over the whole key range.
    let k = index.wrapping_mul(2_654_435_761) % 100_000_000;
    format!(
        "{} {} {} {}",
        FIRST[(k % 10) as usize],
        SECOND[(k / 10 % 10) as usize],
        KIND[(k / 100 % 10) as usize],
        FORM[(k / 1_000 % 10) as usize],
    )
}

/// Venues (MICs) the synthetic instruments trade on.
const VENUES: [&str; 8] = ["XETR", "XFRA", "XPAR", "XAMS", "XMIL", "XSWX", "XLON", "XSTO"];

/// The synthetic instruments' kinds: CFI code and how the name ends, per 10 instruments.
const CLASSES: [(&str, &str); 10] = [
    ("ESVUFR", ""),
    ("ESVUFR", ""),
    ("ESVUFR", ""),
    ("ESVUFR", ""),
    ("ESNUFR", " Pref."),
    ("DBFTFB", " 3.25% Bond"),
    ("DBFTFB", " 4.5% Bond"),
    ("CEOGMS", " Fund"),
    ("CEOGMS", " Index ETF"),
    ("RWSNCA", " Warrant"),
];

/// The currency of an instrument issued in `country`.
fn currency_of(country: &str) -> &'static str {
    match country {
        "US" => "USD",
        "GB" => "GBP",
        "CH" => "CHF",
        "SE" => "SEK",
        _ => "EUR",
    }
}

/// The XML before a FIRDS report's records: the envelope, the application header naming the
/// message, and the report's opening element and header.
fn firds_head(out: &mut impl Write, message: &str, report: &str) -> io::Result<()> {
    write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><BizData xmlns=\"urn:iso:std:iso:20022:tech:xsd:head.003.001.01\">\
         <Hdr><AppHdr><Fr><OrgId><Id><OrgId><Othr><Id>EU</Id></Othr></OrgId></Id></OrgId></Fr>\
         <MsgDefIdr>{message}</MsgDefIdr></AppHdr></Hdr><Pyld><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:{message}\">\
         <{report}><RptHdr><RptgNtty><NtlCmptntAuthrty>EU</NtlCmptntAuthrty></RptgNtty></RptHdr>"
    )
}

/// The `index`-th synthetic instrument's venue `venue` (0-based) as the body of a FIRDS
/// record (general attributes, issuer, venue), with `name_suffix` after its name. Returns
/// `None` past the instrument's venues.
fn firds_record(index: u64, venue: usize, name_suffix: &str) -> io::Result<Option<String>> {
    let venues = 1 + (index.wrapping_mul(7) % 3) as usize;
    if venue >= venues {
        return Ok(None);
    }
    let isin = isin_for(index)?;
    let (cfi, suffix) = CLASSES[(index % 10) as usize];
    let currency = currency_of(&isin.as_str()[..2]);
    let lei = lei_for(index / 3)?;
    let mic = VENUES[((index % VENUES.len() as u64) as usize + venue) % VENUES.len()];
    let first_trading = 2000 + index % 25;
    Ok(Some(format!(
        "<FinInstrmGnlAttrbts><Id>{}</Id><FullNm>{}{suffix}{name_suffix}</FullNm><ClssfctnTp>{cfi}</ClssfctnTp>\
         <NtnlCcy>{currency}</NtnlCcy><CmmdtyDerivInd>false</CmmdtyDerivInd></FinInstrmGnlAttrbts>\
         <Issr>{}</Issr><TradgVnRltdAttrbts><Id>{mic}</Id><IssrReq>false</IssrReq>\
         <FrstTradDt>{first_trading}-03-01T07:00:00Z</FrstTradDt></TradgVnRltdAttrbts>",
        isin.as_str(),
        name_for(index),
        lei.as_str(),
    )))
}

/// Writes an ESMA FIRDS full file (FULINS, `auth.017`) of `isins` instruments, each on one to
/// three venues with a name, CFI code, currency, issuer LEI and first trading day. Returns how
/// many records (one per instrument and venue) it wrote.
pub fn write_firds_fulins(out: &mut impl Write, isins: u64) -> io::Result<u64> {
    firds_head(out, "auth.017.001.02", "FinInstrmRptgRefDataRpt")?;
    let mut records = 0;
    for index in 0..isins {
        let mut venue = 0;
        while let Some(body) = firds_record(index, venue, "")? {
            writeln!(out, "<RefData>{body}</RefData>")?;
            records += 1;
            venue += 1;
        }
    }
    out.write_all(b"</FinInstrmRptgRefDataRpt></Document></Pyld></BizData>\n")?;
    Ok(records)
}

/// Writes an ESMA FIRDS delta file (DLTINS, `auth.036`) of `records` records for a source that
/// holds [`write_firds_fulins`]`(isins)`: of every ten, four modify the name of a venue it has,
/// three list new instruments, two terminate a venue and one cancels one. Returns how many
/// records it wrote.
pub fn write_firds_delta(out: &mut impl Write, records: u64, isins: u64) -> io::Result<u64> {
    firds_head(out, "auth.036.001.03", "FinInstrmRptgRefDataDltaRpt")?;
    let mut written = 0;
    let mut new_index = isins;
    let mut step = 0u64;
    while written < records {
        // Spread over the whole source, one venue (the first) of each instrument touched.
        let index = step.wrapping_mul(2_654_435_761) % isins.max(1);
        let (kind, body) = match step % 10 {
            0..=3 => ("ModfdRcrd", firds_record(index, 0, " (renamed)")?),
            4..=6 => {
                new_index += 1;
                ("NewRcrd", firds_record(new_index, 0, "")?)
            }
            7 | 8 => ("TermntdRcrd", firds_record(index, 0, "")?),
            _ => ("CancRcrd", firds_record(index, 0, "")?),
        };
        step += 1;
        let Some(body) = body else { continue };
        writeln!(out, "<FinInstrm><{kind}>{body}</{kind}></FinInstrm>")?;
        written += 1;
    }
    out.write_all(b"</FinInstrmRptgRefDataDltaRpt></Document></Pyld></BizData>\n")?;
    Ok(written)
}

fn lei_for(index: u64) -> io::Result<Lei> {
    Lei::with_check_digits(&format!("5299{:014}", index % 100_000_000_000_000))
        .map_err(|e| io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_valid_distinct_and_stable() -> Result<(), Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        write_gleif_csv(&mut out, 1_000, None)?;
        let text = String::from_utf8(out)?;
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("LEI,ISIN"));
        let mut isins = std::collections::HashSet::new();
        for line in lines {
            let (lei, isin) = line.split_once(',').ok_or("no comma")?;
            Lei::parse(lei)?;
            Isin::parse(isin)?;
            assert!(isins.insert(isin.to_owned()), "{isin} twice");
        }
        assert_eq!(isins.len(), 1_000);
        let mut again = Vec::new();
        write_gleif_csv(&mut again, 1_000, None)?;
        assert_eq!(text.as_bytes(), again.as_slice());
        Ok(())
    }

    #[test]
    fn a_changed_day_differs_in_one_row_of_every_n() -> Result<(), Box<dyn std::error::Error>> {
        let (mut day1, mut day2) = (Vec::new(), Vec::new());
        write_gleif_csv(&mut day1, 1_000, None)?;
        write_gleif_csv(&mut day2, 1_000, Some(100))?;
        let (day1, day2) = (String::from_utf8(day1)?, String::from_utf8(day2)?);
        let differing = day1.lines().zip(day2.lines()).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 10);
        Ok(())
    }
    #[test]
    fn the_firds_sample_reads_as_named_instruments_on_several_venues()
    -> Result<(), Box<dyn std::error::Error>> {
        use crate::sources::formats::{self, Format, FormatOptions, Item};
        let mut out = Vec::new();
        let records = write_firds_fulins(&mut out, 300)?;
        let mut again = Vec::new();
        write_firds_fulins(&mut again, 300)?;
        assert_eq!(out, again, "the same arguments give the same bytes");
        let input: Box<dyn io::BufRead + Send> = Box::new(io::Cursor::new(out));
        let mut reader = formats::open_reader(Format::FirdsFulins, &FormatOptions::default(), input)?;
        let (mut rows, mut isins, mut venues) =
            (0, std::collections::HashSet::new(), std::collections::HashSet::new());
        while let Some(item) = reader.next_item()? {
            let Item::Row(row) = item else { panic!("a sample record was refused: {item:?}") };
            rows += 1;
            assert!(row.name.as_deref().is_some_and(|name| name.contains(' ')), "{row:?}");
            assert!(row.cfi.as_deref().is_some_and(|cfi| cfi.len() == 6), "{row:?}");
            assert!(row.currency.is_some() && row.lei.is_some(), "{row:?}");
            isins.insert(row.isin.as_str().to_owned());
            venues.insert(row.listing.and_then(|listing| listing.venue).ok_or("no venue")?);
        }
        assert_eq!(rows, records);
        assert_eq!(isins.len(), 300);
        assert!(records > 450 && records < 750, "one to three venues each: {records}");
        assert_eq!(venues.len(), VENUES.len());
        Ok(())
    }
}
