//! Reading a range of a shard again, with the readers' own
//! [`Source::iterator`] and [`Source::page`], the same for the table's
//! stream and a Kinesis one.

use anyhow::{Result, anyhow};
use indicatif::ProgressBar;

use super::{BatchInfo, StreamKind};
use crate::app::App;
use crate::tail::{Batch, Page, Position, Source, Start};

/// The records of a range, or why there are none.
pub(super) enum Fetched {
    Records {
        batch: Batch,
        /// Stream records that could not be read (the table's stream).
        unreadable: u64,
    },
    Lost(String),
}

/// Pages read at most per range, and empty pages in a row that end an open
/// shard's range.
const MAX_PAGES: usize = 100_000;
const EMPTY_PAGES: usize = 3;

const GONE: &str = "the stream or the shard is gone";
const NOT_HELD: &str = "the stream no longer holds the range";

/// The records of `info`'s range, `AT_SEQUENCE_NUMBER` of its start up to
/// its end sequence number.
pub(super) async fn fetch(app: &App, info: &BatchInfo, bar: &ProgressBar) -> Result<Fetched> {
    let kinesis = info.kind == StreamKind::Kinesis;
    let trimmed = if kinesis {
        "the stream no longer holds the range (past its retention)"
    } else {
        "the stream has trimmed the range (older than 24 hours)"
    };
    let shard = info.shard_id.as_str();
    let source = Source::from_arn(app, kinesis, &info.stream_arn);
    let start = source
        .iterator(shard, Position::At(&info.start_sequence_number))
        .await
        .map_err(|e| anyhow!("{e} (shard {shard})"))?;
    let mut iterator = match start {
        Start::At(it) => Some(it),
        Start::Trimmed => return Ok(Fetched::Lost(trimmed.into())),
        Start::Gone => return Ok(Fetched::Lost(GONE.into())),
    };
    let mut records = Batch::empty(kinesis);
    let mut unreadable = 0;
    let mut empty = 0;
    let mut pages = 0;
    while let Some(it) = iterator.take() {
        pages += 1;
        let page = source
            .page(shard, &it, 10_000)
            .await
            .map_err(|e| anyhow!("{e} (shard {shard})"))?;
        let (mut batch, next, behind_ms, page_unreadable) = match page {
            Page::Records {
                batch,
                next,
                behind_ms,
                unreadable,
            } => (batch, next, behind_ms, unreadable),
            Page::Trimmed => return Ok(Fetched::Lost(trimmed.into())),
            Page::Gone => return Ok(Fetched::Lost(GONE.into())),
            Page::Expired => {
                return Err(anyhow!("GetRecords of {shard}: the shard iterator expired"));
            }
        };
        empty = if batch.is_empty() && page_unreadable == 0 {
            empty + 1
        } else {
            0
        };
        unreadable += page_unreadable;
        let past_the_end = batch.truncate_after(&info.end_sequence_number);
        bar.inc(batch.len() as u64);
        records.append(batch);
        let caught_up = behind_ms == Some(0);
        if past_the_end || empty >= EMPTY_PAGES || pages >= MAX_PAGES || (caught_up && empty > 0) {
            break;
        }
        iterator = next;
    }
    if records.is_empty() && unreadable == 0 {
        return Ok(Fetched::Lost(NOT_HELD.into()));
    }
    Ok(Fetched::Records {
        batch: records,
        unreadable,
    })
}
