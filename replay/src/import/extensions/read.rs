//! Reading the old system: its table (paginated Scan) or its CSV export.

use anyhow::{Context as _, Result, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;

use super::OldRow;
use crate::app::App;

/// Every row of the old table (paginated Scan).
pub async fn read_table(app: &App, name: &str) -> Result<Vec<OldRow>> {
    let mut rows = Vec::new();
    let mut pages = app
        .ddb()
        .scan()
        .table_name(name)
        .consistent_read(true)
        .into_paginator()
        .send();
    let text = |i: &std::collections::HashMap<String, AttributeValue>, n: &str| match i.get(n) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        Some(AttributeValue::N(s)) => Some(s.clone()),
        _ => None,
    };
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| crate::import::old_table_error(name, e))?;
        for item in page.items.unwrap_or_default() {
            rows.push(OldRow {
                pk: text(&item, "pk").unwrap_or_default(),
                sk: text(&item, "sk").unwrap_or_default(),
                sk_value: text(&item, "sk_value"),
            });
        }
    }
    Ok(rows)
}

/// The CSV text, from a file or s3://bucket/key.
pub async fn read_csv(app: &App, source: &str) -> Result<String> {
    if source.starts_with("s3://") {
        let (bucket, key) = reconcile::parse_s3_url(source).map_err(|e| anyhow!(e))?;
        let s3 = reconcile::s3_client(&app.sdk);
        let out = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_s3::error::ProvideErrorMetadata as _;
                match (e.code(), e.message()) {
                    (Some(code), Some(message)) => anyhow!("reading {source}: {code}: {message}"),
                    _ => anyhow!(
                        "reading {source}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    ),
                }
            })?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| anyhow!("reading {source}: {e}"))?
            .into_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|_| anyhow!("{source} is not UTF-8 text"))
    } else {
        tokio::fs::read_to_string(source)
            .await
            .with_context(|| format!("reading {source}"))
    }
}
