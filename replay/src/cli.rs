//! Command-line definition and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use streamfold_shared::ids::{GroupId, MessageId, Timestamp};

use crate::app::App;
use crate::chat::{self, NewMessage};
use crate::input::Format;
use crate::pipeline::{Pipeline, ProcessorKind};
use crate::render::{clip, table, when};
use crate::replay::ReplayOptions;
use crate::table::{self as tbl, Schema};

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
    Replay(ReplayArgs),
    /// Run the processors live on the table's stream (and the Connect
    /// agent Kinesis stream when configured), with checkpoints.
    Tail(crate::tail::TailArgs),
    /// Write a live stream (the table's, or a Kinesis one) to JSON Lines
    /// that `replay` reads back.
    Capture(crate::capture::CaptureArgs),
    /// Records that could not be processed.
    #[command(subcommand)]
    Deadletters(DeadlettersCmd),
    /// Redrive the batches Lambda gave up on: read the on-failure records
    /// (an SQS queue, S3 objects or files), fetch each range from its shard
    /// again and run it through its processors.
    Redrive(crate::redrive::RedriveArgs),
    /// The pipeline's health: table and stream, tail's lag per shard, dead
    /// letters, the extension pool, a projection check. Exit code 1 when
    /// something needs attention.
    Status(crate::status::StatusArgs),
    /// Recompute projections from their sources; check and repair them.
    #[command(subcommand)]
    Rebuild(crate::rebuild::RebuildCmd),
    /// Connect agents: profiles, history, daily totals (agent-activity).
    #[command(subcommand)]
    Agents(crate::agents::AgentsCmd),
    /// Routing profiles as the agent events show them (name, queues) and
    /// the agents on each (agent-activity).
    #[command(subcommand, name = "routing-profiles")]
    RoutingProfiles(crate::routing_profiles::RoutingProfilesCmd),
    /// The agent extension pool: init, list, show, stats.
    #[command(subcommand)]
    Extensions(crate::extensions::ExtensionsCmd),
    /// Adopt the data of the systems streamfold replaces (extensions, chat).
    #[command(subcommand)]
    Import(crate::import::ImportCmd),
    /// Put Connect agent events (files, or a synthetic day of N agents)
    /// into a Kinesis stream, as Connect's agent event streaming does.
    Publish(crate::publish::PublishArgs),
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

#[derive(Debug, Subcommand)]
pub enum MessagesCmd {
    /// Send a message: into an existing group (--group, pattern C) or
    /// starting a new one (--to, pattern D).
    Send(SendArgs),
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The group to post into (pattern C).
    #[arg(long, conflicts_with = "to")]
    pub group: Option<String>,
    /// Sender: a user uuid or handle of the group (with --group), or
    /// UUID:HANDLE:DISPLAY NAME (with --to).
    #[arg(long)]
    pub from: String,
    /// Recipient of a new group: UUID:HANDLE:DISPLAY NAME (pattern D).
    #[arg(long)]
    pub to: Option<String>,
    /// Creation time (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Message id; default a new uuid.
    #[arg(long)]
    pub id: Option<String>,
    /// Group id of a new group; default a new uuid.
    #[arg(long)]
    pub new_group_id: Option<String>,
    /// The text.
    pub text: String,
}

#[derive(Debug, Subcommand)]
pub enum ConversationsCmd {
    /// A user's conversations, newest first (pattern B).
    List {
        /// User uuid (or a handle, found through previews).
        user: String,
        #[arg(long, default_value_t = 20)]
        limit: i32,
        /// Continue after this cursor (printed under a full page).
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A conversation: the newest messages, shown oldest first (pattern A).
    Get {
        group: String,
        #[arg(long, default_value_t = 20)]
        limit: i32,
        /// Show messages older than this cursor.
        #[arg(long)]
        before: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Files to replay, in order; each is detected on its own (kinds may be
    /// mixed) unless --format names one for all.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Only these processors (default: every one that owns the records).
    #[arg(long = "processor", value_enum)]
    pub processors: Vec<ProcessorKind>,
    /// The format of every file (default: detected per file).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Records per batch.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Retries of a failed record before it is dead-lettered.
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// Also write the records' source items (groups, messages) first: for
    /// replaying a capture into a new table.
    #[arg(long)]
    pub restore_sources: bool,
    /// Write nothing: print every write a real run would send now, one JSON
    /// line per request, on stdout (reads still go to the table; the
    /// summary goes to stderr).
    #[arg(long, conflicts_with = "restore_sources")]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub use crate::deadletters::DeadlettersCmd;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let app = App::from_env(&cli.table).await?;
    match cli.command {
        Command::Table(cmd) => table_cmd(&app, cmd).await,
        Command::Seed => {
            let s = chat::seed(&app.ctx.exec).await?;
            let users = chat::seed_users()?;
            println!(
                "seeded {} new groups and {} new messages into {}",
                s.groups, s.messages, app.table
            );
            for u in &users[..2] {
                println!("  user {} ({})", u.user_handle, u.user_uuid);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Messages(MessagesCmd::Send(args)) => send(&app, args).await,
        Command::Conversations(cmd) => conversations(&app, cmd).await,
        Command::Agents(cmd) => crate::agents::run(&app, cmd).await,
        Command::RoutingProfiles(cmd) => crate::routing_profiles::run(&app, cmd).await,
        Command::Extensions(cmd) => crate::extensions::run(&app, cmd).await,
        Command::Publish(args) => crate::publish::run_cli(&app, args).await,
        Command::Import(cmd) => crate::import::run(&app, cmd).await,
        Command::Replay(args) => replay(&app, args).await,
        Command::Tail(args) => crate::tail::run_cli(&app, args).await,
        Command::Capture(args) => crate::capture::run_cli(&app, args).await,
        Command::Rebuild(cmd) => crate::rebuild::run_cli(&app, cmd).await,
        Command::Deadletters(cmd) => crate::deadletters::run_cli(&app, cmd).await,
        Command::Status(args) => crate::status::run_cli(&app, args).await,
        Command::Redrive(args) => crate::redrive::run_cli(&app, args).await,
    }
}

/// `streamfold replay`: every file through the processors that own its
/// records, one summary. Exit code: 0, 1 when a record failed or could not
/// be decoded,
/// [`crate::replay::EXIT_INTERRUPTED`] after Ctrl-C (2 on an error).
async fn replay(app: &App, args: ReplayArgs) -> Result<ExitCode> {
    app.require_table().await?;
    let mut ctx = app.ctx.clone();
    if args.dry_run {
        let recorder = std::sync::Arc::new(streamfold_shared::executor::DryRun::stdout());
        ctx.exec = ctx.exec.dry_run(recorder);
    }
    let pipeline = Pipeline::new(ctx, &args.processors);
    let opts = ReplayOptions {
        files: args.files,
        format: args.format,
        batch_size: args.batch_size,
        max_retries: args.max_retries,
        restore_sources: args.restore_sources,
        progress: !args.json,
    };
    let stop = crate::replay::ctrl_c_stop()?;
    let s = crate::replay::run(&pipeline, &opts, stop).await?;
    // A dry run's stdout holds only its writes: the summary goes to stderr.
    let text = if args.json {
        format!("{}\n", serde_json::to_string(&s.to_json())?)
    } else {
        s.render()
    };
    if args.dry_run {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    Ok(if s.interrupted {
        ExitCode::from(crate::replay::EXIT_INTERRUPTED)
    } else if s.counts.failed > 0 || s.undecodable > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn table_cmd(app: &App, cmd: TableCmd) -> Result<ExitCode> {
    match cmd {
        TableCmd::Create { schema } => {
            let schema = Schema::load(schema.as_deref())?;
            if tbl::create(app.ddb(), &app.table, &schema).await? {
                println!("created table {}", app.table);
            } else {
                println!("table {} already exists", app.table);
            }
        }
        TableCmd::Delete { yes } => {
            if !yes {
                bail!("deleting table {} loses every item: pass --yes", app.table);
            }
            if tbl::delete(app.ddb(), &app.table).await? {
                println!("deleted table {}", app.table);
            } else {
                println!("table {} does not exist", app.table);
            }
        }
        TableCmd::Scan { item_type, json } => {
            let items = tbl::scan(app.ddb(), &app.table, item_type.as_deref()).await?;
            if json {
                let all: Vec<_> = items.iter().map(tbl::to_json).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for item in &items {
                    println!("{}", tbl::to_json(item));
                }
                eprintln!("{} items", items.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn send(app: &App, args: SendArgs) -> Result<ExitCode> {
    let at = match &args.at {
        Some(t) => Timestamp::parse(t)?,
        None => Timestamp::now(),
    };
    let id = MessageId::new(args.id.clone().unwrap_or_else(chat::new_uuid))?;
    match (&args.group, &args.to) {
        (Some(group), None) => {
            let group = GroupId::new(group.as_str())?;
            let [a, b] = chat::participants(&app.ctx.exec, &group).await?;
            let sender = [a, b]
                .into_iter()
                .find(|p| p.user_uuid.as_str() == args.from || p.user_handle == args.from)
                .ok_or_else(|| {
                    anyhow::anyhow!("{} is not a participant of group {group}", args.from)
                })?;
            let message = NewMessage {
                group: group.clone(),
                id,
                at,
                sender,
                text: args.text,
            };
            if chat::post(&app.ctx.exec, &message).await? {
                println!("sent message {} into group {group}", message.id);
            } else {
                println!("message {} already exists", message.id);
            }
        }
        (None, Some(to)) => {
            let from = chat::parse_participant(&args.from)?;
            let to = chat::parse_participant(to)?;
            let group = GroupId::new(args.new_group_id.clone().unwrap_or_else(chat::new_uuid))?;
            let message = NewMessage {
                group: group.clone(),
                id,
                at,
                sender: from.clone(),
                text: args.text,
            };
            if chat::create_group(&app.ctx.exec, [from, to], at, &message).await? {
                println!("created group {group} with message {}", message.id);
            } else {
                println!("group {group} already exists; nothing written");
            }
        }
        _ => bail!("give --group GROUP (existing conversation) or --to UUID:HANDLE:NAME (new one)"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn conversations(app: &App, cmd: ConversationsCmd) -> Result<ExitCode> {
    match cmd {
        ConversationsCmd::List {
            user,
            limit,
            cursor,
            json,
        } => {
            let user = chat::resolve_user(&app.ctx.exec, &user).await?;
            let (previews, next) =
                chat::list_conversations(&app.ctx.exec, &user, limit, cursor.as_deref()).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "user_uuid": user, "conversations": previews, "cursor": next
                    }))?
                );
            } else {
                println!("Conversations of {user}, newest first:");
                let rows: Vec<Vec<String>> = previews
                    .iter()
                    .map(|p| {
                        vec![
                            when(&p.last_message_at.to_string()),
                            format!("{} ({})", p.user_handle, p.user_display_name),
                            clip(&p.message, 60),
                            p.message_group_uuid.to_string(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["LAST MESSAGE", "WITH", "PREVIEW", "GROUP"], &rows)
                );
                if let Some(c) = next {
                    println!("more: --cursor '{c}'");
                }
            }
        }
        ConversationsCmd::Get {
            group,
            limit,
            before,
            json,
        } => {
            let group = GroupId::new(group)?;
            let (messages, cursor) =
                chat::get_conversation(&app.ctx.exec, &group, limit, before.as_deref()).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "message_group_uuid": group, "messages": messages, "cursor": cursor
                    }))?
                );
            } else {
                let rows: Vec<Vec<String>> = messages
                    .iter()
                    .map(|m| {
                        vec![
                            when(&m.created_at),
                            m.user_handle.clone(),
                            m.message.clone(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["AT", "FROM", "MESSAGE"], &rows));
                if let Some(c) = cursor {
                    println!("older: --before '{c}'");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
