//! Tables that delete themselves: a [`TableGuard`] deletes its table on the
//! local endpoint when it is dropped, whether the test passed or panicked, so
//! a failing test leaks no table.
//!
//! A `Drop` cannot await, and the test's own runtime may be a current-thread
//! runtime that is blocked while the guard drops. So the DeleteTable goes to
//! one dedicated thread with a small runtime and a client of its own (whose
//! connections that runtime drives), and the drop waits for its answer, at
//! most [`WAIT`]. Nothing in here panics: a table that cannot be deleted is
//! reported on stderr and left.

use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// How long a drop waits for its DeleteTable to be answered.
const WAIT: Duration = Duration::from_secs(30);

/// A request to the deleting thread: the table, and where to say it is done.
type Request = (String, mpsc::Sender<()>);

/// Deletes the named table when dropped.
#[derive(Debug)]
pub struct TableGuard {
    name: String,
}

impl TableGuard {
    /// Guards `name`: from now on the table is deleted when the guard drops.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The guard reads as its table's name, wherever a `&str` is wanted.
impl std::ops::Deref for TableGuard {
    type Target = str;

    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        delete_blocking(&self.name);
    }
}

/// Deletes `name` on the dedicated thread and waits (at most [`WAIT`]).
fn delete_blocking(name: &str) {
    let Some(deleter) = deleter() else {
        eprintln!("table guard: no deleting thread, table {name} is left");
        return;
    };
    let (done, answered) = mpsc::channel();
    if deleter.send((name.to_owned(), done)).is_err() {
        eprintln!("table guard: the deleting thread is gone, table {name} is left");
        return;
    }
    if answered.recv_timeout(WAIT).is_err() {
        eprintln!("table guard: table {name} not deleted within {WAIT:?}");
    }
}

/// The sender to the deleting thread, started on first use.
fn deleter() -> Option<&'static UnboundedSender<Request>> {
    static DELETER: OnceLock<Option<UnboundedSender<Request>>> = OnceLock::new();
    DELETER.get_or_init(start_deleter).as_ref()
}

fn start_deleter() -> Option<UnboundedSender<Request>> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("table guard: no runtime for deleting tables: {e}");
            return None;
        }
    };
    let (tx, mut rx) = unbounded_channel::<Request>();
    let spawned = std::thread::Builder::new()
        .name("table-guard".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                let sdk = streamfold_shared::config::load_sdk_config().await;
                let client = aws_sdk_dynamodb::Client::new(&sdk);
                while let Some((name, done)) = rx.recv().await {
                    if let Err(e) = streamfold::table::delete(&client, &name).await {
                        eprintln!("table guard: {e:#}");
                    }
                    let _ = done.send(());
                }
            });
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            eprintln!("table guard: no thread for deleting tables: {e}");
            None
        }
    }
}
