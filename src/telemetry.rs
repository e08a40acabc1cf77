//! Logging: `tracing` to stderr (stdout stays for command output), as text or JSON lines.
//!
//! Values that users control (names, URLs, errors quoting a file) are logged as fields, never
//! inside the message: the text format writes a string field quoted and escaped (`"a\nb"`), and
//! JSON escapes it too, so no value can start a line of its own and forge an entry.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (tests): later calls do nothing.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in files or log collectors.
    let ansi = std::io::stderr().is_terminal();
    let _ = subscriber(filter, format, ansi, std::io::stderr).try_init();
}

/// The subscriber [`init`] installs, writing to `writer`.
fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().finish()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What a subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_value_with_line_breaks_cannot_forge_a_log_line() {
        let forged = "olga\r\n2026-12-06T12:00:00Z  INFO isinbeat: logged in user=\"admin\"";
        for format in [LogFormat::Text, LogFormat::Json] {
            let captured = Captured::default();
            let writer = captured.clone();
            let installed = subscriber(EnvFilter::new("info"), format, false, move || writer.clone());
            tracing::subscriber::with_default(installed, || {
                tracing::warn!(user = forged, error = format!("cannot read {forged}"), "a refused login");
            });
            let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
            assert_eq!(text.lines().count(), 1, "{format:?}: one entry is one line:\n{text}");
            assert!(!text.contains('\r'), "{format:?}: {text}");
            assert!(text.contains(r"olga\r\n2026"), "{format:?}: the value is there, escaped: {text}");
        }
    }
}
