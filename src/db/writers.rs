//! Who may write to a SQLite database, so that a bulk writer — an import — leaves SQLite's one
//! write lock to others only when someone could want it.
//!
//! SQLite lets one connection write at a time. One that finds the lock taken polls for it under
//! the busy timeout, sleeping longer between tries the longer it has waited (up to 100 ms). A
//! bulk writer that commits and begins again at once wins nearly every time and keeps a login
//! out until its busy timeout runs out; one that pauses after every chunk whether anyone waits
//! or not loses a quarter of its time.
//!
//! So whoever may write says so, with a shared advisory lock (`flock`) on a file beside the
//! database (`NAME-writers`, named as SQLite's own `-wal` and `-shm` files are):
//! - every connection checked out of the pool holds it until it goes back ([`Presence`]): a
//!   login's single-statement writes, a session saved after a page, the scheduler's tick;
//! - a connection that does not (a bulk writer's own) holds it while it waits in
//!   `BEGIN IMMEDIATE` ([`while_waiting`]), so that two imports take turns.
//!
//! A bulk writer that has just committed a chunk tries to take the lock exclusively
//! ([`step_aside`]): when it cannot, someone may want the write lock, and it leaves the lock free
//! until they are done, for a bounded time; when nobody is there it goes straight on.
//!
//! Advisory locks work across processes (an `isinbeat import` beside the server) and belong to
//! an open file, so every pooled connection and every thread keeps its own. Nobody holds the
//! lock exclusively longer than it takes to test it, so taking it shared never waits long.

use std::cell::RefCell;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::sqlite::SqliteConnection;
use diesel::{QueryableByName, RunQueryDsl};

/// The most databases a thread keeps a file open for (tests open many; a server one).
const FILES_KEPT: usize = 4;

/// How often a bulk writer that steps aside looks again whether the others are done.
const LOOK_EVERY: Duration = Duration::from_millis(1);

thread_local! {
    /// This thread's open files, by database file, the most recently used first.
    static FILES: RefCell<Vec<(PathBuf, File)>> = const { RefCell::new(Vec::new()) };
}

/// The file whose lock says who may write: the database's name with `-writers` after it.
fn writers_file(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-writers");
    PathBuf::from(name)
}

fn open(database: &Path) -> Option<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(writers_file(database)).ok()
}

/// A pooled connection's say that it may write: held from its checkout until it goes back to
/// the pool, unless its user is the bulk writer that steps aside for the others.
#[derive(Debug, Default)]
pub struct Presence {
    /// `None` for a database in memory, or a folder where the file cannot be made: the
    /// connection then goes unannounced, and SQLite's busy timeout alone holds.
    file: Option<File>,
    held: bool,
}

impl Presence {
    /// The presence of a connection to the SQLite database at `database` (not yet announced).
    pub fn for_database(database: &Path) -> Self {
        let in_memory = database.as_os_str().is_empty() || database.as_os_str() == ":memory:";
        Self { file: if in_memory { None } else { open(database) }, held: false }
    }

    /// Says that this connection may write, until [`withdraw`](Self::withdraw).
    pub fn announce(&mut self) {
        if let Some(file) = &self.file
            && !self.held
        {
            self.held = file.lock_shared().is_ok();
        }
    }

    /// Takes the say back: the connection is idle, or its user is the bulk writer.
    pub fn withdraw(&mut self) {
        if let Some(file) = &self.file
            && self.held
        {
            // Closing the file would release it too; an error here leaves it for that.
            let _ = file.unlock();
            self.held = false;
        }
    }
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

/// Calls `f` with this thread's open file for `database`, opening it on first use; `None` when
/// it cannot be opened.
fn with_file<T>(database: &Path, f: impl FnOnce(&File) -> T) -> Option<T> {
    FILES.with_borrow_mut(|files| {
        let position = match files.iter().position(|(path, _)| path == database) {
            Some(position) => position,
            None => {
                let file = open(database)?;
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
/// may write.
pub(super) fn while_waiting<T>(
    conn: &mut SqliteConnection,
    begin: impl FnOnce(&mut SqliteConnection) -> T,
) -> T {
    let database = database_path(conn);
    let announced = database
        .as_deref()
        .and_then(|database| with_file(database, |file| file.lock_shared().is_ok()))
        .unwrap_or(false);
    let begun = begin(conn);
    if announced && let Some(database) = database.as_deref() {
        let _ = with_file(database, File::unlock);
    }
    begun
}

/// Whether another connection says it may write now.
fn others_present(database: &Path) -> bool {
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

/// For a bulk writer that has just committed: while others say they may write, leaves the
/// write lock free for them, for at most `at_most`; returns at once when nobody is there.
pub fn step_aside(conn: &mut SqliteConnection, at_most: Duration) {
    let Some(database) = database_path(conn) else { return };
    let started = Instant::now();
    while others_present(&database) && started.elapsed() < at_most {
        std::thread::sleep(LOOK_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::Connection;

    fn database() -> (tempfile::TempDir, PathBuf, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
        let database = database_path(&mut conn).unwrap();
        (dir, database, conn)
    }

    #[test]
    fn a_checked_out_connection_is_seen_from_another_thread_until_it_goes_back() {
        let (_dir, database, mut conn) = database();
        assert!(!others_present(&database), "nobody is there yet");
        let mut presence = Presence::for_database(&database);
        presence.announce();
        let seen = std::thread::spawn({
            let database = database.clone();
            move || others_present(&database)
        });
        assert!(seen.join().unwrap(), "another thread sees the connection");

        let started = Instant::now();
        step_aside(&mut conn, Duration::from_millis(50));
        assert!(started.elapsed() >= Duration::from_millis(50), "someone is there: the bulk writer waits");

        presence.withdraw();
        let started = Instant::now();
        step_aside(&mut conn, Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(1), "nobody is there: no stepping aside");
    }

    #[test]
    fn a_writer_waiting_for_the_lock_is_seen_from_another_thread_until_it_is_in() {
        let (_dir, database, _conn) = database();
        let (inside, go_on) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let waiter = std::thread::spawn({
            let path = database.clone();
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
        assert!(others_present(&database), "the other thread waits");
        go_on.0.send(()).unwrap();
        waiter.join().unwrap();
        assert!(!others_present(&database), "it is in, and nobody waits any more");
    }

    #[test]
    fn a_database_in_memory_has_no_file_and_nobody_is_there() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        assert_eq!(database_path(&mut conn), None);
        assert_eq!(while_waiting(&mut conn, |_| 7), 7);
        let mut presence = Presence::for_database(Path::new(":memory:"));
        presence.announce();
        presence.withdraw();
    }
}
