//! Kinesis streams on the local endpoint for the agent-event tests: create
//! one and wait until it is active, put records, read every record back.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{Shard, ShardIteratorType, StreamStatus};
use serde_json::Value;
use streamfold_shared::kinesis::KinesisRecord;

/// A Kinesis client from the environment (the local endpoint).
pub async fn client() -> Client {
    let sdk = streamfold_shared::config::load_sdk_config().await;
    Client::new(&sdk)
}

/// Creates stream `name` with `shards` shards and waits until it is active.
pub async fn create_stream(k: &Client, name: &str, shards: i32) {
    k.create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("the Kinesis stream is created");
    wait_active(k, name).await;
}

/// Waits (polling, at most 30 s) until stream `name` is active.
pub async fn wait_active(k: &Client, name: &str) {
    for _ in 0..300 {
        let d = k.describe_stream_summary().stream_name(name).send().await;
        let active = d
            .ok()
            .and_then(|d| d.stream_description_summary)
            .is_some_and(|s| s.stream_status == StreamStatus::Active);
        if active {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stream {name} did not become active");
}

/// Puts one record (`hash`: an explicit hash key, to choose the shard).
pub async fn put(k: &Client, stream: &str, key: &str, hash: Option<&str>, data: &str) {
    k.put_record()
        .stream_name(stream)
        .partition_key(key)
        .set_explicit_hash_key(hash.map(str::to_owned))
        .data(Blob::new(data.as_bytes().to_vec()))
        .send()
        .await
        .expect("the Kinesis record is put");
}

/// Puts every line of `events` (agent events, one JSON object a line), each
/// with its agent's ARN as the partition key, as Connect does.
pub async fn put_agent_events(k: &Client, stream: &str, events: &str) {
    for line in events.lines() {
        let v: Value = serde_json::from_str(line).expect("each agent event is JSON");
        put(
            k,
            stream,
            v["AgentARN"].as_str().unwrap_or_default(),
            None,
            line,
        )
        .await;
    }
}

/// The shards of stream `name`.
pub async fn shards(k: &Client, stream: &str) -> Vec<Shard> {
    k.list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("the stream's shards are listed")
        .shards
        .unwrap_or_default()
}

/// The stream's ARN.
pub async fn stream_arn(k: &Client, stream: &str) -> String {
    k.describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .expect("the stream is described")
        .stream_description_summary
        .map(|s| s.stream_arn)
        .unwrap_or_default()
}

/// Every record of one shard from the trim horizon, as the processors read
/// them (`arn`: the event source ARN the records carry, if any).
pub async fn shard_records(
    k: &Client,
    stream: &str,
    shard: &str,
    arn: Option<&str>,
) -> Vec<KinesisRecord> {
    let mut it = k
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("the shard iterator is given")
        .shard_iterator;
    let mut out = Vec::new();
    while let Some(i) = it {
        let page = k
            .get_records()
            .shard_iterator(i)
            .send()
            .await
            .expect("the shard's records are read");
        if page.records.is_empty() {
            break;
        }
        out.extend(
            page.records
                .into_iter()
                .map(|r| KinesisRecord::from_sdk(r, shard, arn)),
        );
        it = page.next_shard_iterator;
    }
    out
}
