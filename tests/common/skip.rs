//! Skipped tests that say so. A test whose service (PostgreSQL, a broker, Chromium, the shared
//! fixtures) is missing returns early outside CI, which libtest counts as passed; so it also
//! writes `SKIPPED: <binary> <test> needs …` to the real standard error, past libtest's output
//! capture, and `.ci/test` moves each such test from the passed count to the skipped one. In CI
//! (`CI=true`) the callers fail instead, so nothing is skipped there.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;

/// Whether this is a CI run (`CI=true` or `CI=1`), where a missing service fails the test.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// The tests of this process that already said they are skipped: a test may look for its
/// service more than once before it returns, and is one skip.
static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Says that the running test is skipped because it `needs` something that is missing (say
/// what and how to provide it: "PostgreSQL (set ISINBEAT_TEST_DATABASE_URL)"). The caller then
/// returns without testing anything.
pub fn report_skip(needs: &str) {
    // libtest runs each test on a thread named after it.
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|stem| stem.to_string_lossy().into_owned()))
        .map(|stem| stem.rsplit_once('-').map_or(stem.clone(), |(name, _hash)| name.to_owned()))
        .unwrap_or_default();
    let first_time = match SAID.lock() {
        Ok(mut said) => said.get_or_insert_with(HashSet::new).insert(test.clone()),
        Err(_) => true,
    };
    if first_time {
        // Not `eprintln!`: libtest captures that and shows it only for a failed test. One
        // write of the whole line keeps it whole among the other tests' output.
        let line = format!("SKIPPED: {binary} {test} needs {needs}\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}
