//! Per-shard checkpoints of `streamfold tail`, stored in the table itself
//! (docs/design.md `checkpoint` items): `pk = CHECKPOINT#{stream arn}`,
//! `sk = {shard_id}`, with `sequence_number` (the last record of the shard
//! whose batch was fully processed), `updated_at`, and `ended` once the
//! shard was read to its end (so its children may start without reading it
//! again).
//!
//! A checkpoint is written only after its batch settled (every record
//! applied, no-op, ignored or dead-lettered), with one PutItem, so a crash at
//! any point leaves either the old or the new position: the records after it
//! are read again, which the idempotent processors absorb (at least once).

use std::collections::HashMap;

use anyhow::{Result, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use streamfold_shared::attrs::{s, sv};
use streamfold_shared::executor::{Executor, Item};
use streamfold_shared::ids::{ShardId, Timestamp};
use streamfold_shared::keys::{Key, StreamArn};

/// The item `type` of checkpoints. Every processor ignores it (they decode
/// only their own types), and `tail`/`capture` drop these records before
/// the pipeline sees them.
pub const CHECKPOINT_TYPE: &str = "checkpoint";

/// Where a shard was left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last processed record's sequence number.
    pub sequence_number: Option<String>,
    /// The shard was read to its end.
    pub ended: bool,
}

/// The checkpoints of one stream.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    exec: Executor,
    stream: StreamArn,
}

impl Checkpoints {
    pub fn new(exec: Executor, stream_arn: &str) -> Result<Self> {
        Ok(Self {
            exec,
            stream: StreamArn::new(stream_arn)?,
        })
    }

    pub fn stream(&self) -> &str {
        self.stream.as_str()
    }

    fn key(&self, shard: &str) -> Result<Key> {
        Ok(Key::Checkpoint {
            stream: self.stream.clone(),
            shard: ShardId::new(shard)?,
        })
    }

    /// Every checkpoint of the stream, by shard id (consistent read).
    pub async fn load(&self) -> Result<HashMap<String, Checkpoint>> {
        let pk = format!("CHECKPOINT#{}", self.stream.as_str());
        let mut out = HashMap::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .exec
                .retrying("Query", || {
                    self.exec
                        .client()
                        .query()
                        .table_name(self.exec.table())
                        .key_condition_expression("pk = :pk")
                        .expression_attribute_values(":pk", sv(pk.clone()))
                        .consistent_read(true)
                        .set_exclusive_start_key(start.clone())
                        .send()
                })
                .await
                .map_err(|e| anyhow!("reading the checkpoints of {}: {e}", self.stream()))?;
            for item in page.items.unwrap_or_default() {
                if let Some((shard, cp)) = from_item(&item) {
                    out.insert(shard, cp);
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Records where a shard is: after `sequence_number`, and whether it was
    /// read to its end. One PutItem (atomic).
    pub async fn save(&self, shard: &str, cp: &Checkpoint) -> Result<()> {
        let item = self.item(shard, cp)?;
        self.exec
            .retrying("PutItem", || {
                self.exec
                    .client()
                    .put_item()
                    .table_name(self.exec.table())
                    .set_item(Some(item.clone()))
                    .send()
            })
            .await
            .map_err(|e| anyhow!("writing the checkpoint of shard {shard}: {e}"))?;
        Ok(())
    }

    /// The item of a checkpoint.
    pub fn item(&self, shard: &str, cp: &Checkpoint) -> Result<Item> {
        let key = self.key(shard)?;
        let mut item: Item = HashMap::from([
            ("pk".to_owned(), sv(key.pk())),
            ("sk".to_owned(), sv(key.sk())),
            ("type".to_owned(), sv(CHECKPOINT_TYPE)),
            ("stream_arn".to_owned(), sv(self.stream.as_str())),
            ("shard_id".to_owned(), sv(shard)),
            ("updated_at".to_owned(), sv(Timestamp::now().to_string())),
        ]);
        if let Some(seq) = &cp.sequence_number {
            item.insert("sequence_number".to_owned(), sv(seq.as_str()));
        }
        if cp.ended {
            item.insert("ended".to_owned(), AttributeValue::Bool(true));
        }
        Ok(item)
    }
}

/// A checkpoint item read back: (shard id, checkpoint). Items that are not
/// checkpoints are skipped.
pub fn from_item(item: &Item) -> Option<(String, Checkpoint)> {
    let key = Key::parse(s(item, "pk")?, s(item, "sk")?).ok()?;
    let Key::Checkpoint { shard, .. } = key else {
        return None;
    };
    Some((
        shard.to_string(),
        Checkpoint {
            sequence_number: s(item, "sequence_number").map(str::to_owned),
            ended: matches!(item.get("ended"), Some(AttributeValue::Bool(true))),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_items_read_back() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let cps = Checkpoints::new(
            Executor::new(client, "t"),
            "arn:aws:dynamodb:us-east-1:1:table/t/stream/2026-11-21T00:00:00.000",
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        let cp = Checkpoint {
            sequence_number: Some("000100".to_owned()),
            ended: true,
        };
        let item = cps
            .item("shardId-0001", &cp)
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s(&item, "type"), Some(CHECKPOINT_TYPE));
        assert_eq!(
            s(&item, "pk"),
            Some("CHECKPOINT#arn:aws:dynamodb:us-east-1:1:table/t/stream/2026-11-21T00:00:00.000")
        );
        assert_eq!(from_item(&item), Some(("shardId-0001".to_owned(), cp)));
        // A shard id cannot smuggle a key separator in.
        assert!(cps.item("shard#1", &Checkpoint::default()).is_err());
        assert!(Checkpoints::new(cps.exec.clone(), "arn#x").is_err());
    }
}
