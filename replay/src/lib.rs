//! The `streamfold` CLI as a library: every command is a function the binary
//! and the integration tests call alike.

#![recursion_limit = "256"]

pub mod agents;
pub mod app;
pub mod capture;
pub mod chat;
pub mod checkpoint;
pub mod cli;
pub mod deadletters;
pub mod extensions;
pub mod import;
pub mod input;
pub mod pipeline;
pub mod problem;
pub mod publish;
pub mod rebuild;
pub mod reconcile_cmd;
pub mod redrive;
pub mod registry;
pub mod render;
pub mod replay;
pub mod report;
pub mod routing_profiles;
pub mod status;
pub mod table;
pub mod tail;
pub mod tail_metrics;
