//! The batch's two gsi1 queues (free extensions, waiting agents): what a
//! race falls back to once the schedule's view is spent.

use std::collections::{HashSet, VecDeque};

use streamfold_shared::engine::Context;
use streamfold_shared::executor::{ExecError, Item};
use streamfold_shared::keys::Extension;

use crate::model::{self, ExtItem, ExtState, FREE, Profile, WAITING, Waiter};

/// A batch-wide view of one gsi1 queue: candidates not yet handed out in
/// this batch, in index order.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    pub(crate) items: VecDeque<T>,
    pub(crate) tried: HashSet<String>,
    pub(crate) exhausted: bool,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            tried: HashSet::new(),
            exhausted: false,
        }
    }
}

/// The two queues of a batch, behind one lock so that "no free extension,
/// so wait" and "no waiting agent, so free it" cannot miss each other
/// within a batch.
#[derive(Debug, Default)]
pub(crate) struct Queues {
    pub(crate) free: Queue<Extension>,
    pub(crate) waiting: Queue<Waiter>,
    /// How many assignments the batch is expected to need (prefetch size).
    pub(crate) want: usize,
}

impl Queues {
    pub(crate) async fn next_free(
        &mut self,
        ctx: &Context,
    ) -> Result<Option<Extension>, ExecError> {
        loop {
            if let Some(x) = self.free.items.pop_front() {
                return Ok(Some(x));
            }
            if self.free.exhausted {
                return Ok(None);
            }
            let want = self.want.clamp(1, 500);
            let found = refill(ctx, FREE, want, &self.free.tried, |item| {
                let x = ExtItem::from_item(item).ok()?;
                matches!(x.state, ExtState::Free).then_some(x.extension)
            })
            .await?;
            if found.is_empty() {
                self.free.exhausted = true;
            }
            for x in found {
                self.free.tried.insert(x.to_string());
                self.free.items.push_back(x);
            }
        }
    }

    pub(crate) async fn next_waiter(&mut self, ctx: &Context) -> Result<Option<Waiter>, ExecError> {
        loop {
            if let Some(w) = self.waiting.items.pop_front() {
                return Ok(Some(w));
            }
            if self.waiting.exhausted {
                return Ok(None);
            }
            let found = refill(ctx, WAITING, 25, &self.waiting.tried, |item| {
                let p = Profile::from_item(item).ok()?;
                (p.extension.is_none()).then(|| Waiter::from(&p))
            })
            .await?;
            if found.is_empty() {
                self.waiting.exhausted = true;
            }
            for w in found {
                self.waiting.tried.insert(w.agent.to_string());
                self.waiting.items.push_back(w);
            }
        }
    }

    /// The spare candidates a batch's schedule left (`self` holds what was
    /// read, so that a refill skips it).
    pub(crate) fn with_spares(mut self, free: Vec<Extension>, waiting: Vec<Waiter>) -> Self {
        self.free.items = free.into();
        self.waiting.items = waiting.into();
        self
    }

    /// An agent of this batch that found no free extension: a later release
    /// in the batch hands it one.
    pub(crate) fn enqueue_waiter(&mut self, w: Waiter) {
        if self.waiting.tried.insert(w.agent.to_string()) {
            self.waiting.items.push_back(w);
        }
    }
}

/// Reads a gsi1 queue from its start until `want` new candidates (not in
/// `tried`) are found or the queue ends.
pub(crate) async fn refill<T>(
    ctx: &Context,
    queue: &str,
    want: usize,
    tried: &HashSet<String>,
    parse: impl Fn(&Item) -> Option<T>,
) -> Result<Vec<T>, ExecError>
where
    T: ToString,
{
    let mut found = Vec::new();
    let mut start = None;
    loop {
        let limit = i32::try_from((want + tried.len()).min(1000)).unwrap_or(1000);
        let (items, next) = model::queue_page(ctx, queue, limit, start).await?;
        for item in &items {
            if let Some(c) = parse(item)
                && !tried.contains(&c.to_string())
            {
                found.push(c);
            }
        }
        if found.len() >= want || next.is_none() {
            return Ok(found);
        }
        start = next;
    }
}

impl std::fmt::Display for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.agent.as_str())
    }
}
