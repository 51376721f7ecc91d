//! Queries through the executor: one builder for the key-condition reads
//! the processors and the CLI make (a partition of the table or of an
//! index, page by page), sent with the executor's retries.

use aws_sdk_dynamodb::types::Select;

use crate::executor::{ExecError, Executor, Expr, Item};

/// A Query: a key condition on the table or one index, in sort-key order
/// (or newest first), optionally consistent, limited or projected.
#[derive(Debug, Clone)]
pub struct Query {
    index: Option<String>,
    condition: Expr,
    forward: bool,
    limit: Option<i32>,
    consistent: bool,
    projection: Option<Expr>,
}

/// One page of a Query: its items and where the next page starts.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Item>,
}

impl Query {
    /// A Query of the table with this key condition (`pk = :pk` and its
    /// values, as an [`Expr`]).
    pub fn table(condition: Expr) -> Self {
        Self {
            index: None,
            condition,
            forward: true,
            limit: None,
            consistent: false,
            projection: None,
        }
    }

    /// A Query of an index (`gsi1`, `gsi2`) with this key condition.
    pub fn index(index: &str, condition: Expr) -> Self {
        Self {
            index: Some(index.to_owned()),
            ..Self::table(condition)
        }
    }

    /// Highest sort key first.
    pub fn newest_first(mut self) -> Self {
        self.forward = false;
        self
    }

    /// At most `n` items a page (at least 1).
    pub fn limit(mut self, n: i32) -> Self {
        self.limit = Some(n.max(1));
        self
    }

    /// A strongly consistent read (the table only).
    pub fn consistent(mut self) -> Self {
        self.consistent = true;
        self
    }

    /// Only these attributes (a projection expression and its names).
    pub fn project(mut self, projection: Expr) -> Self {
        self.projection = Some(projection);
        self
    }

    /// The request every page of this Query shares, from `start`.
    fn request(
        &self,
        exec: &Executor,
        start: Option<Item>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let mut names = self.condition.names.clone();
        if let Some(p) = &self.projection {
            names.extend(p.names.clone());
        }
        let values = &self.condition.values;
        exec.client()
            .query()
            .table_name(exec.table())
            .set_index_name(self.index.clone())
            .key_condition_expression(self.condition.text.clone())
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then(|| values.clone()))
            .set_consistent_read(self.consistent.then_some(true))
            .set_exclusive_start_key(start)
    }

    /// One page, from `start` (the previous page's `next`).
    pub async fn page(&self, exec: &Executor, start: Option<Item>) -> Result<Page, ExecError> {
        let out = exec
            .retrying("Query", || {
                self.request(exec, start.clone())
                    .scan_index_forward(self.forward)
                    .set_limit(self.limit)
                    .set_projection_expression(self.projection.as_ref().map(|p| p.text.clone()))
                    .send()
            })
            .await?;
        Ok(Page {
            items: out.items.unwrap_or_default(),
            next: out.last_evaluated_key,
        })
    }

    /// Every item, every page.
    pub async fn all(&self, exec: &Executor) -> Result<Vec<Item>, ExecError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self.page(exec, start).await?;
            items.extend(page.items);
            match page.next {
                Some(next) => start = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// How many items match (every page, `Select COUNT`).
    pub async fn count(&self, exec: &Executor) -> Result<u64, ExecError> {
        let mut total = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let out = exec
                .retrying("Query", || {
                    self.request(exec, start.clone())
                        .select(Select::Count)
                        .send()
                })
                .await?;
            total += u64::try_from(out.count).unwrap_or(0);
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(total);
            }
        }
    }
}
