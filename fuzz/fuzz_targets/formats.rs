//! Every format reader, over any bytes: rows or rejected lines or a clean error, never a panic,
//! and no row without a valid ISIN. The first byte picks the format.
#![no_main]

use std::io::Cursor;

use isinbeat::domain::Isin;
use isinbeat::sources::formats::{Format, FormatOptions, Item, open_reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else { return };
    let (format, options) = match pick % 4 {
        0 => (Format::GleifIsinLei, FormatOptions::default()),
        1 => (Format::FirdsFulins, FormatOptions::default()),
        2 => (Format::XetraInstruments, FormatOptions::default()),
        _ => (
            Format::Csv,
            FormatOptions::from_json(r#"{"isin_column":"1","lei_column":"2","name_column":"3"}"#)
                .expect("valid options"),
        ),
    };
    let Ok(mut reader) = open_reader(format, &options, Box::new(Cursor::new(content.to_vec()))) else { return };
    // A bound on the items, so that a reader that loops without reading shows as a timeout.
    for _ in 0..100_000 {
        match reader.next_item() {
            Ok(Some(Item::Row(row))) => {
                assert!(Isin::parse(row.isin.as_str()).is_ok(), "{format:?} gave a row with a bad ISIN");
            }
            Ok(Some(Item::Rejected(_))) => {}
            Ok(None) | Err(_) => return,
        }
    }
});
