mod message_groups;
