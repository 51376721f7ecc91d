//! `streamfold table create|delete|scan`: the table as schemas/table.json
//! defines it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::app::App;
use anyhow::{Context as _, Result, anyhow, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableStatus, TimeToLiveSpecification,
};
use clap::Subcommand;
use serde::Deserialize;

/// schemas/table.json, built in; `--schema FILE` reads another.
pub const BUILTIN_SCHEMA: &str = include_str!("../../schemas/table.json");

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct KeyElement {
    pub attribute_name: String,
    pub key_type: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AttrDef {
    pub attribute_name: String,
    pub attribute_type: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionDef {
    pub projection_type: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct IndexDef {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: ProjectionDef,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDef {
    pub stream_enabled: bool,
    pub stream_view_type: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TtlDef {
    pub attribute_name: String,
    pub enabled: bool,
}

/// The table definition of schemas/table.json.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Schema {
    pub key_schema: Vec<KeyElement>,
    pub attribute_definitions: Vec<AttrDef>,
    pub global_secondary_indexes: Vec<IndexDef>,
    pub stream_specification: StreamDef,
    pub time_to_live_specification: TtlDef,
    pub billing_mode: String,
}

impl Schema {
    pub fn builtin() -> Result<Self> {
        Self::parse(BUILTIN_SCHEMA)
    }

    pub fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text).context("schemas/table.json is not a valid table definition")
    }

    pub fn load(path: Option<&std::path::Path>) -> Result<Self> {
        match path {
            None => Self::builtin(),
            Some(p) => Self::parse(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            ),
        }
    }
}

fn key_elements(elements: &[KeyElement]) -> Result<Vec<KeySchemaElement>> {
    elements
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(Into::into)
        })
        .collect()
}

/// Creates the table (and its TTL) and waits until it is active. `false` if
/// it already existed.
pub async fn create(client: &Client, name: &str, schema: &Schema) -> Result<bool> {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(schema.billing_mode.as_str()))
        .set_key_schema(Some(key_elements(&schema.key_schema)?))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(schema.stream_specification.stream_enabled)
                .stream_view_type(StreamViewType::from(
                    schema.stream_specification.stream_view_type.as_str(),
                ))
                .build()?,
        );
    for a in &schema.attribute_definitions {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&a.attribute_name)
                .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                .build()?,
        );
    }
    for g in &schema.global_secondary_indexes {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&g.index_name)
                .set_key_schema(Some(key_elements(&g.key_schema)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            g.projection.projection_type.as_str(),
                        ))
                        .build(),
                )
                .build()?,
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(e) => {
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception())
            {
                return Ok(false);
            }
            return Err(anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e)))
                .with_context(|| format!("creating table {name}"));
        }
    }
    wait_active(client, name).await?;
    if schema.time_to_live_specification.enabled {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(&schema.time_to_live_specification.attribute_name)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e)))
            .context("enabling time to live")?;
    }
    Ok(true)
}

async fn wait_active(client: &Client, name: &str) -> Result<()> {
    for _ in 0..600 {
        let out = client.describe_table().table_name(name).send().await;
        if let Ok(out) = out
            && out.table.and_then(|t| t.table_status) == Some(TableStatus::Active)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("table {name} did not become active within 60 s")
}

/// Deletes the table; `false` if there was none.
pub async fn delete(client: &Client, name: &str) -> Result<bool> {
    match client.delete_table().table_name(name).send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e)))
            .with_context(|| format!("deleting table {name}")),
    }
}

/// Every item of the table (optionally of one type), paginated.
pub async fn scan(
    client: &Client,
    name: &str,
    item_type: Option<&str>,
) -> Result<Vec<BTreeMap<String, AttributeValue>>> {
    let mut items = Vec::new();
    let mut pages = client
        .scan()
        .table_name(name)
        .consistent_read(true)
        .set_filter_expression(item_type.map(|_| "#t = :t".to_owned()))
        .set_expression_attribute_names(
            item_type.map(|_| [("#t".to_owned(), "type".to_owned())].into()),
        )
        .set_expression_attribute_values(
            item_type.map(|t| [(":t".to_owned(), AttributeValue::S(t.to_owned()))].into()),
        )
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        items.extend(
            page.items
                .unwrap_or_default()
                .into_iter()
                .map(|i| i.into_iter().collect()),
        );
    }
    items.sort_by_key(key_of);
    Ok(items)
}

fn key_of(item: &BTreeMap<String, AttributeValue>) -> (String, String) {
    let s = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => String::new(),
    };
    (s("pk"), s("sk"))
}

/// An item as plain JSON (strings, numbers, lists, maps), for `--json` and
/// for comparing tables.
pub fn to_json(item: &BTreeMap<String, AttributeValue>) -> serde_json::Value {
    serde_json::Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn value_json(v: &AttributeValue) -> serde_json::Value {
    use serde_json::Value;
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| n.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(l) => Value::Array(l.iter().map(value_json).collect()),
        AttributeValue::M(m) => {
            let sorted: BTreeMap<_, _> = m.iter().collect();
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), value_json(v)))
                    .collect(),
            )
        }
        AttributeValue::Ss(s) => Value::from(s.clone()),
        AttributeValue::Ns(n) => Value::from(n.clone()),
        other => Value::String(format!("{other:?}")),
    }
}

#[derive(Debug, Subcommand)]
pub enum TableCmd {
    /// Create the table from schemas/table.json (no-op if it exists).
    Create {
        /// Another table definition file.
        #[arg(long)]
        schema: Option<PathBuf>,
    },
    /// Delete the table.
    Delete {
        /// Really delete it.
        #[arg(long)]
        yes: bool,
    },
    /// Print every item (optionally of one type).
    Scan {
        #[arg(long = "type")]
        item_type: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// `streamfold table …`.
pub async fn run_cli(app: &App, cmd: TableCmd) -> Result<ExitCode> {
    match cmd {
        TableCmd::Create { schema } => {
            let schema = Schema::load(schema.as_deref())?;
            if create(app.ddb(), &app.table, &schema).await? {
                println!("created table {}", app.table);
            } else {
                println!("table {} already exists", app.table);
            }
        }
        TableCmd::Delete { yes } => {
            if !yes {
                bail!("deleting table {} loses every item: pass --yes", app.table);
            }
            if delete(app.ddb(), &app.table).await? {
                println!("deleted table {}", app.table);
            } else {
                println!("table {} does not exist", app.table);
            }
        }
        TableCmd::Scan { item_type, json } => {
            let items = scan(app.ddb(), &app.table, item_type.as_deref()).await?;
            if json {
                let all: Vec<_> = items.iter().map(to_json).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for item in &items {
                    println!("{}", to_json(item));
                }
                eprintln!("{} items", items.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schema_has_both_indexes_stream_and_ttl() {
        let s = Schema::builtin().unwrap_or_else(|e| panic!("{e:#}"));
        let names: Vec<_> = s
            .global_secondary_indexes
            .iter()
            .map(|g| g.index_name.as_str())
            .collect();
        assert_eq!(names, ["gsi1", "gsi2"]);
        assert_eq!(
            s.stream_specification.stream_view_type,
            "NEW_AND_OLD_IMAGES"
        );
        assert_eq!(s.time_to_live_specification.attribute_name, "expires_at");
        assert_eq!(s.key_schema[0].attribute_name, "pk");
    }
}
