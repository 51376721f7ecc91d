//! The command line: the top-level [`Cli`] with its global flags, and the
//! [`Command`] enum naming each subcommand's arguments, which live in the
//! subcommand's own module (`tail::TailArgs`, `replay::ReplayArgs`, …).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::chat::command::{ConversationsCmd, MessagesCmd};
use crate::shutdown::Shutdown;
use crate::table::TableCmd;
use crate::{
    agents, capture, chat, deadletters, extensions, import, publish, rebuild, redrive, replay,
    routing_profiles, status, tail,
};

/// streamfold: folds DynamoDB and Kinesis change streams into views in the
/// same single table.
///
/// AWS settings come from the environment (AWS_REGION, credentials,
/// AWS_ENDPOINT_URL for a local endpoint); the table from STREAMFOLD_TABLE.
#[derive(Debug, Parser)]
#[command(name = "streamfold", version, about, long_about = None)]
pub struct Cli {
    /// The table.
    #[arg(
        long,
        global = true,
        env = "STREAMFOLD_TABLE",
        default_value = "streamfold"
    )]
    pub table: String,
    /// More detail: the whole error as the SDK gives it, and streamfold's
    /// debug logs (-vv: the AWS SDK's own logs too, held at INFO so that no
    /// item or message reaches them; STREAMFOLD_SDK_LOG=1 lifts that).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, delete or list the table.
    #[command(subcommand)]
    Table(TableCmd),
    /// Write two users' sample conversations (idempotent).
    Seed,
    /// Send messages.
    #[command(subcommand)]
    Messages(MessagesCmd),
    /// Read conversation lists and conversations.
    #[command(subcommand)]
    Conversations(ConversationsCmd),
    /// Replay captured records (Lambda DynamoDB or Kinesis event files,
    /// JSON Lines of stream records, Kinesis records or Connect agent
    /// events; kinds may be mixed) through the processors that own them.
    Replay(replay::ReplayArgs),
    /// Run the processors live on the table's stream (and the Connect
    /// agent Kinesis stream when configured), with checkpoints.
    Tail(tail::TailArgs),
    /// Write a live stream (the table's, or a Kinesis one) to JSON Lines
    /// that `replay` reads back.
    Capture(capture::CaptureArgs),
    /// Records that could not be processed.
    #[command(subcommand)]
    Deadletters(deadletters::DeadlettersCmd),
    /// Redrive the batches Lambda gave up on: read the on-failure records
    /// (an SQS queue, S3 objects or files), fetch each range from its shard
    /// again and run it through its processors.
    Redrive(redrive::RedriveArgs),
    /// The pipeline's health: table and stream, tail's lag per shard, dead
    /// letters, the extension pool, a projection check. Exit code 1 when
    /// something needs attention.
    Status(status::StatusArgs),
    /// Recompute projections from their sources; check and repair them.
    #[command(subcommand)]
    Rebuild(rebuild::RebuildCmd),
    /// Connect agents: profiles, history, daily totals (agent-activity).
    #[command(subcommand)]
    Agents(agents::AgentsCmd),
    /// Routing profiles as the agent events show them (name, queues) and
    /// the agents on each (agent-activity).
    #[command(subcommand, name = "routing-profiles")]
    RoutingProfiles(routing_profiles::RoutingProfilesCmd),
    /// The agent extension pool: init, list, show, stats.
    #[command(subcommand)]
    Extensions(extensions::ExtensionsCmd),
    /// Adopt the data of the systems streamfold replaces (extensions, chat).
    #[command(subcommand)]
    Import(import::ImportCmd),
    /// Put Connect agent events (files, or a synthetic day of N agents)
    /// into a Kinesis stream, as Connect's agent event streaming does.
    Publish(publish::PublishArgs),
}

/// Runs a parsed command line; `replay`, `tail` and `capture` stop early
/// on `shutdown`.
pub async fn run(cli: Cli, shutdown: &Shutdown) -> Result<ExitCode> {
    let app = App::from_env(&cli.table).await?;
    match cli.command {
        Command::Table(cmd) => crate::table::run_cli(&app, cmd).await,
        Command::Seed => chat::command::seed(&app).await,
        Command::Messages(MessagesCmd::Send(args)) => chat::command::send(&app, args).await,
        Command::Conversations(cmd) => chat::command::conversations(&app, cmd).await,
        Command::Agents(cmd) => agents::run(&app, cmd).await,
        Command::RoutingProfiles(cmd) => routing_profiles::run(&app, cmd).await,
        Command::Extensions(cmd) => extensions::run(&app, cmd).await,
        Command::Publish(args) => publish::run_cli(&app, args).await,
        Command::Import(cmd) => import::run(&app, cmd).await,
        Command::Replay(args) => replay::run_cli(&app, args, shutdown).await,
        Command::Tail(args) => tail::run_cli(&app, args, shutdown).await,
        Command::Capture(args) => capture::run_cli(&app, args, shutdown).await,
        Command::Rebuild(cmd) => rebuild::run_cli(&app, cmd).await,
        Command::Deadletters(cmd) => deadletters::run_cli(&app, cmd).await,
        Command::Status(args) => status::run_cli(&app, args).await,
        Command::Redrive(args) => redrive::run_cli(&app, args).await,
    }
}
