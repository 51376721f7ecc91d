//! The one way the long-running commands (`replay`, `tail`, `capture`) stop.
//!
//! A [`Shutdown`] is created once in `main` and handed to the commands. It
//! holds two [`CancellationToken`]s: *stop* (the first Ctrl-C or SIGTERM:
//! stop reading, let the batches in flight settle so their checkpoints stay
//! correct, print the summary) and *now* (a second one: leave at once; a
//! checkpoint is still consistent, being written only after its batch
//! settled). Commands that never stop early do not listen, so Ctrl-C ends
//! them as it always did.

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The stop requests of one run (cheap to clone; clones share the tokens).
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    stop: CancellationToken,
    now: CancellationToken,
}

impl Shutdown {
    /// A shutdown nothing requests until [`Shutdown::listen`] or a call of
    /// [`Shutdown::request_stop`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns Ctrl-C (SIGINT) and SIGTERM into stop requests: the first asks
    /// to stop, a second to leave at once. The handlers are registered before
    /// this returns.
    pub fn listen(&self) -> Result<()> {
        let me = self.clone();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut sigint = signal(SignalKind::interrupt())?;
            let mut sigterm = signal(SignalKind::terminate())?;
            tokio::spawn(async move {
                for first in [true, false] {
                    let got = tokio::select! {
                        s = sigint.recv() => s,
                        s = sigterm.recv() => s,
                    };
                    if got.is_none() {
                        return;
                    }
                    me.interrupted(first);
                }
            });
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            for first in [true, false] {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                me.interrupted(first);
            }
        });
        Ok(())
    }

    fn interrupted(&self, first: bool) {
        if first {
            self.request_stop();
        } else {
            self.request_now();
        }
    }

    /// Asks to stop: read no more, settle what is in flight.
    pub fn request_stop(&self) {
        self.stop.cancel();
    }

    /// Asks to leave at once.
    pub fn request_now(&self) {
        self.stop.cancel();
        self.now.cancel();
    }

    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Completes once a stop is asked for.
    pub async fn stopping(&self) {
        self.stop.cancelled().await;
    }

    /// Completes once leaving at once is asked for.
    pub async fn forced(&self) {
        self.now.cancelled().await;
    }

    /// The stop token, for a run that also stops itself (idle, an error):
    /// a child token is cancelled with it, never the other way round.
    pub fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    /// Drives this shutdown from `interrupt` (tests give their own): the
    /// first completed future asks to stop, the second to leave at once.
    /// Abort the handle once the run is over.
    pub fn spawn_interrupts<I>(&self, mut interrupt: I) -> JoinHandle<()>
    where
        I: FnMut() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move {
            for first in [true, false] {
                interrupt().await;
                me.interrupted(first);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_interrupt_asks_to_stop_and_the_second_to_leave_at_once() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let shutdown = Shutdown::new();
        let child = shutdown.stop_token().child_token();
        let task = shutdown.spawn_interrupts(move || {
            let rx = rx.clone();
            Box::pin(async move {
                rx.lock().await.recv().await;
            })
        });
        assert!(!shutdown.is_stopping());
        let _ = tx.send(());
        shutdown.stopping().await;
        assert!(child.is_cancelled(), "a run's own token stops with it");
        let _ = tx.send(());
        shutdown.forced().await;
        let _ = task.await;
        // A run that stops itself leaves the shutdown alone.
        let other = Shutdown::new();
        other.stop_token().child_token().cancel();
        assert!(!other.is_stopping());
    }
}
