//! Where ISIN lists come from: fetching a source's file (HTTP(S) with conditional GET, or a
//! local file), opening what is inside it (zip, gzip, plain), and reading its rows in the
//! source's format. Knows nothing of the database.

pub mod decompress;
pub mod esma_firds;
pub mod fetch;
pub mod formats;
pub mod locators;
pub mod outbound;
pub mod sample;
