mod agent_activity;
mod extensions;
mod lambda_runtime;
mod message_groups;
mod rebuild;
mod tail;
mod template;
