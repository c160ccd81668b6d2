//! A small pool of read-only connections. Opening a SQLite connection is cheap but not free
//! (it re-reads the schema), so connections are kept; their number is capped so that a burst
//! of readers cannot exhaust file descriptors.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, PoisonError};

use rusqlite::Connection;

#[derive(Debug)]
pub(crate) struct Pool {
    path: PathBuf,
    max: usize,
    state: Mutex<State>,
    returned: Condvar,
}

#[derive(Debug, Default)]
struct State {
    idle: Vec<Connection>,
    open: usize,
}

impl Pool {
    pub(crate) fn new(path: PathBuf, max: usize) -> Pool {
        Pool {
            path,
            max,
            state: Mutex::new(State::default()),
            returned: Condvar::new(),
        }
    }

    pub(crate) fn get(&self) -> rusqlite::Result<Pooled<'_>> {
        // The state is a list and a counter, consistent at every await-free step, so a poisoned
        // lock (a panic elsewhere while holding it) leaves nothing half-done.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match crate::open_reader(&self.path) {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(err) => {
                        self.state
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .open -= 1;
                        self.returned.notify_one();
                        Err(err)
                    }
                };
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A connection on loan; it goes back to the pool when dropped.
pub(crate) struct Pooled<'p> {
    pool: &'p Pool,
    conn: Option<Connection>,
}

impl Deref for Pooled<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut state = self
                .pool
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.idle.push(conn);
            drop(state);
            self.pool.returned.notify_one();
        }
    }
}
