//! Who waits for SQLite's one write lock, so that a bulk writer steps aside only when someone
//! does.
//!
//! SQLite lets one connection write at a time. One that finds the lock taken polls for it under
//! the busy timeout, sleeping longer between tries the longer it has waited (up to 100 ms). A
//! bulk writer — an import — that commits and begins again at once would win nearly every time
//! and keep a login out until its busy timeout runs out. So every SQLite writer says that it
//! waits: from before its `BEGIN IMMEDIATE` until that returns, it holds a shared advisory lock
//! (`flock`) on a file beside the database (`NAME-writers`). A bulk writer that has just
//! committed tries to take that lock exclusively: when it cannot, someone is waiting, and it
//! leaves the write lock free until they are in. When nobody waits, it goes straight on.
//!
//! Advisory locks work across processes (an `isinbeat import` beside the server) and belong to
//! an open file, so each thread keeps its own open file per database. A writer never blocks on
//! this file: when the lock cannot be had at once, it goes on unannounced, as every writer did
//! before, and SQLite's busy timeout still holds.

use std::cell::RefCell;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::sqlite::SqliteConnection;
use diesel::{QueryableByName, RunQueryDsl};

/// The most databases a thread keeps a file open for (tests open many; a server one).
const FILES_KEPT: usize = 4;

/// How often a bulk writer looks again whether the writers it let in are in.
const LOOK_EVERY: Duration = Duration::from_millis(1);

thread_local! {
    /// This thread's open files, by database file, the most recently used first.
    static FILES: RefCell<Vec<(PathBuf, File)>> = const { RefCell::new(Vec::new()) };
}

/// The file of the connection's main database; `None` for one in memory.
fn database_path(conn: &mut SqliteConnection) -> Option<PathBuf> {
    #[derive(QueryableByName)]
    struct Main {
        #[diesel(sql_type = diesel::sql_types::Text)]
        file: String,
    }
    diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .get_result::<Main>(conn)
        .ok()
        .filter(|main| !main.file.is_empty())
        .map(|main| PathBuf::from(main.file))
}

/// The file whose lock says who waits: the database's name with `-writers` after it, as
/// SQLite's own `-wal` and `-shm` files are named.
fn waiters_file(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-writers");
    PathBuf::from(name)
}

/// Calls `f` with this thread's open file for `database`, opening it on first use; `None` when
/// it cannot be opened (a read-only folder): the writers then go on unannounced.
fn with_file<T>(database: &Path, f: impl FnOnce(&File) -> T) -> Option<T> {
    FILES.with_borrow_mut(|files| {
        let position = match files.iter().position(|(path, _)| path == database) {
            Some(position) => position,
            None => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(waiters_file(database))
                    .ok()?;
                files.truncate(FILES_KEPT - 1);
                files.insert(0, (database.to_owned(), file));
                0
            }
        };
        files[..=position].rotate_right(1);
        Some(f(&files[0].1))
    })
}

/// Runs `begin` — which waits for the write lock — with this thread counted among those who
/// wait for it.
pub(super) fn while_waiting<T>(
    conn: &mut SqliteConnection,
    begin: impl FnOnce(&mut SqliteConnection) -> T,
) -> T {
    let database = database_path(conn);
    let announced = database
        .as_deref()
        .and_then(|database| with_file(database, |file| file.try_lock_shared().is_ok()))
        .unwrap_or(false);
    let begun = begin(conn);
    if announced && let Some(database) = database.as_deref() {
        // Closing the file would also release it; an error here leaves it for that.
        let _ = with_file(database, File::unlock);
    }
    begun
}

/// Whether another writer is waiting for the write lock now.
fn others_waiting(database: &Path) -> bool {
    with_file(database, |file| match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    })
    .unwrap_or(false)
}

/// For a bulk writer that has just committed: while other writers wait for the write lock,
/// leaves it free for them, for at most `at_most`; returns at once when nobody waits.
pub fn step_aside(conn: &mut SqliteConnection, at_most: Duration) {
    let Some(database) = database_path(conn) else { return };
    let started = Instant::now();
    while others_waiting(&database) && started.elapsed() < at_most {
        std::thread::sleep(LOOK_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::Connection;

    #[test]
    fn a_waiting_writer_is_seen_from_another_thread_until_it_is_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
        let database = database_path(&mut conn).unwrap();
        assert!(!others_waiting(&database), "nobody waits yet");

        let (inside, go_on) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let waiter = std::thread::spawn({
            let path = path.clone();
            let (inside, go_on) = (inside.0, go_on.1);
            move || {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
                while_waiting(&mut conn, |_| {
                    inside.send(()).unwrap();
                    go_on.recv().unwrap();
                });
            }
        });
        inside.1.recv().unwrap();
        assert!(others_waiting(&database), "the other thread waits");
        go_on.0.send(()).unwrap();
        waiter.join().unwrap();
        assert!(!others_waiting(&database), "it is in, and nobody waits any more");

        let started = Instant::now();
        step_aside(&mut conn, Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(1), "nobody waits: no stepping aside");
    }

    #[test]
    fn a_database_in_memory_has_no_file_and_nobody_waits() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        assert_eq!(database_path(&mut conn), None);
        assert_eq!(while_waiting(&mut conn, |_| 7), 7);
    }
}
