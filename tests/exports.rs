//! Exports against clients that stop reading: stalled exports hold no database connection, so
//! logins and pages keep answering; the exports one process streams at once are capped; and an
//! export whose client takes nothing for the stall window ends, with its connection — on both
//! backends, over raw TCP for the clients that never read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Backend, TestApp, spawn_app_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

on_both_backends!(stalled_exports_leave_logins_and_pages_answering_and_end_after_the_stall_window);

/// ISINs imported: their JSON lines are about 10 MB, far more than the socket buffers between a
/// client that never reads and the server hold.
const ISINS: u64 = 30_000;
/// Exports at once, and the stalled clients that take them all.
const EXPORTS_MAX: usize = 10;
/// The stall window the test application runs with (the default is a minute).
const STALL: Duration = Duration::from_secs(20);

/// `isinbeat import FILE` of `ISINS` synthetic ISINs into the source `gleif`.
fn import_isins(app: &TestApp, dir: &Path) {
    let file = dir.join("gleif.csv");
    std::fs::write(&file, common::gleif_csv((0..ISINS).map(|i| (i, i / 10)))).unwrap();
    let output = Command::new(BIN)
        .args(["import", &file.to_string_lossy(), "--format", "gleif_isin_lei", "--source", "gleif"])
        .env_clear()
        .env("DATABASE_URL", app.database.url())
        .env("ISINBEAT_LOG", "warn")
        .env("ISINBEAT_SEED", "none")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A logged-in request for the JSON lines export from a client with a tiny receive buffer that
/// reads the response's head and then nothing more. Returns the connection, held open.
async fn stalled_export(port: u16, cookie: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let request = format!(
        "GET /admin/isins/export.jsonl HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("the export starts within seconds")
            .unwrap();
        assert!(n > 0, "the server closed the export before its head: {}", String::from_utf8_lossy(&head));
        head.extend_from_slice(&buffer[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    stream
}

/// A TCP state in `/proc/net/tcp`.
#[cfg(target_os = "linux")]
const ESTABLISHED: &str = "01";

/// The state of the server's end of the loopback connection from `client_port` to
/// `server_port`, as `/proc/net/tcp` shows it, while the kernel has it.
#[cfg(target_os = "linux")]
fn server_end_state(server_port: u16, client_port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    // 127.0.0.1 as the kernel prints it: its 32 bits in the machine's byte order.
    let loopback = if cfg!(target_endian = "little") { "0100007F" } else { "7F000001" };
    let (local, remote) = (format!("{loopback}:{server_port:04X}"), format!("{loopback}:{client_port:04X}"));
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| fields.get(3).map(|state| (*state).to_owned()))
            .flatten()
    })
}

async fn stalled_exports_leave_logins_and_pages_answering_and_end_after_the_stall_window(backend: Backend) {
    let max = EXPORTS_MAX.to_string();
    let stall = STALL.as_secs().to_string();
    let settings =
        [("ISINBEAT_EXPORTS_MAX", max.as_str()), ("ISINBEAT_EXPORT_STALL_SECONDS", stall.as_str())];
    let Some(app) = spawn_app_with(backend, &settings).await else { return };
    let dir = tempfile::tempdir().unwrap();
    import_isins(&app, dir.path());
    let cookie = app.admin().await.session_cookie().unwrap();

    // Ten exports (more than the test's pool of six connections) whose clients stop reading.
    let first_opened = Instant::now();
    let mut held = Vec::new();
    for _ in 0..EXPORTS_MAX {
        held.push(stalled_export(app.port, &cookie).await);
    }
    let all_held = Instant::now();
    // Until the socket buffers between them are full the ten read pages; then they hold nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Meanwhile someone logs in and looks at the schedules, within seconds.
    let someone = app.browser();
    let login = tokio::time::timeout(Duration::from_secs(5), someone.login("admin", ADMIN_PASSWORD))
        .await
        .expect("a login answers while ten exports are stalled");
    assert_eq!(login.status(), 303);
    let page = tokio::time::timeout(Duration::from_secs(5), someone.get("/admin/schedules/"))
        .await
        .expect("the schedules page answers while ten exports are stalled");
    assert_eq!(page.status(), 200);

    // An eleventh export is refused, saying why; the ten are still streaming.
    let refused = tokio::time::timeout(Duration::from_secs(5), someone.get("/admin/isins/export.csv"))
        .await
        .expect("a refusal answers at once");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let message = refused.text().await.unwrap();
    assert!(message.contains("10 exports are running") && message.contains("Try again"), "{message}");
    #[cfg(target_os = "linux")]
    for stream in &held {
        let state = server_end_state(app.port, stream.local_addr().unwrap().port());
        assert_eq!(state.as_deref(), Some(ESTABLISHED), "the server's end of a stalled export");
    }

    // After the stall window the server ends the ten and shuts their connections, without
    // waiting for the clients: what each client had not yet read is all it gets, then the
    // connection ends, without the chunk that completes a response.
    #[cfg(target_os = "linux")]
    {
        let deadline = all_held + STALL + Duration::from_secs(30);
        let established = |stream: &TcpStream| {
            let state = server_end_state(app.port, stream.local_addr().unwrap().port());
            state.as_deref() == Some(ESTABLISHED)
        };
        while held.iter().any(established) {
            assert!(
                Instant::now() < deadline,
                "stalled exports are still connected long after the stall window"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(first_opened.elapsed() >= STALL, "the exports were ended before the stall window");
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = first_opened;
        let ended = all_held + STALL + Duration::from_secs(10);
        tokio::time::sleep(ended.saturating_duration_since(Instant::now())).await;
    }
    for (i, mut stream) in held.into_iter().enumerate() {
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest)).await;
        assert!(ended.is_ok(), "stalled export {i} is still open after the stall window");
        assert!(!rest.ends_with(b"0\r\n\r\n"), "stalled export {i} was completed instead of ended");
    }

    // Their permits are back: a client that reads gets the whole export, page after page.
    let response = someone.get("/admin/isins/export.jsonl").await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let isins: HashSet<&str> =
        body.lines().map(|line| line.get(9..21).expect("a line begins with its ISIN")).collect();
    assert_eq!(body.lines().count(), ISINS as usize);
    assert_eq!(isins.len(), ISINS as usize, "no ISIN twice");
}
