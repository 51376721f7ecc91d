//! The app side's commands: `seed`, `messages send`, `conversations list|get`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use streamfold_shared::ids::{GroupId, MessageId, Timestamp};

use super::NewMessage;
use crate::app::App;
use crate::render::{clip, table, when};

/// `streamfold seed`.
pub async fn seed(app: &App) -> Result<ExitCode> {
    let s = super::seed(&app.ctx.exec).await?;
    let users = super::seed_users()?;
    println!(
        "seeded {} new groups and {} new messages into {}",
        s.groups, s.messages, app.table
    );
    for u in &users[..2] {
        println!("  user {} ({})", u.user_handle, u.user_uuid);
    }
    Ok(ExitCode::SUCCESS)
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

/// `streamfold messages send`.
pub async fn send(app: &App, args: SendArgs) -> Result<ExitCode> {
    let at = match &args.at {
        Some(t) => Timestamp::parse(t)?,
        None => Timestamp::now(),
    };
    let id = MessageId::new(args.id.clone().unwrap_or_else(super::new_uuid))?;
    match (&args.group, &args.to) {
        (Some(group), None) => {
            let group = GroupId::new(group.as_str())?;
            let [a, b] = super::participants(&app.ctx.exec, &group).await?;
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
            if super::post(&app.ctx.exec, &message).await? {
                println!("sent message {} into group {group}", message.id);
            } else {
                println!("message {} already exists", message.id);
            }
        }
        (None, Some(to)) => {
            let from = super::parse_participant(&args.from)?;
            let to = super::parse_participant(to)?;
            let group = GroupId::new(args.new_group_id.clone().unwrap_or_else(super::new_uuid))?;
            let message = NewMessage {
                group: group.clone(),
                id,
                at,
                sender: from.clone(),
                text: args.text,
            };
            if super::create_group(&app.ctx.exec, [from, to], at, &message).await? {
                println!("created group {group} with message {}", message.id);
            } else {
                println!("group {group} already exists; nothing written");
            }
        }
        _ => bail!("give --group GROUP (existing conversation) or --to UUID:HANDLE:NAME (new one)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `streamfold conversations …`.
pub async fn conversations(app: &App, cmd: ConversationsCmd) -> Result<ExitCode> {
    match cmd {
        ConversationsCmd::List {
            user,
            limit,
            cursor,
            json,
        } => {
            let user = super::resolve_user(&app.ctx.exec, &user).await?;
            let (previews, next) =
                super::list_conversations(&app.ctx.exec, &user, limit, cursor.as_deref()).await?;
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
                super::get_conversation(&app.ctx.exec, &group, limit, before.as_deref()).await?;
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
