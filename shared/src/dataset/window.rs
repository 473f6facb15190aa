//! Splitting a conversation longer than the model's per-example limit into
//! windows that each fit, end on an assistant reply and keep the system
//! prompt, so no reply is trained without its context's instructions.

use super::conversation::{Message, Role};
use super::tokens::TokenCounter;

/// Tokens of one message under the checker's convention (3 per message,
/// every value encoded, +1 for a name, calls as their JSON text).
pub fn message_tokens(counter: &mut TokenCounter, m: &Message) -> u64 {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut n = 3 + counter.count(role) as u64;
    if let Some(c) = &m.content {
        n += counter.count(c) as u64;
    }
    if let Some(name) = &m.name {
        n += counter.count(name) as u64 + 1;
    }
    if let Some(calls) = &m.tool_calls {
        let json = serde_json::to_string(calls).unwrap_or_default();
        n += counter.count(&json) as u64;
    }
    if let Some(id) = &m.tool_call_id {
        n += counter.count(id) as u64;
    }
    n
}

/// The example as is when it fits, else windows of it; `None` when one
/// turn (the messages up to and including one reply) cannot fit even
/// alone with the system prompt.
pub fn windows(
    messages: Vec<Message>,
    counter: &mut TokenCounter,
    limit: u64,
) -> Option<Vec<Vec<Message>>> {
    let costs: Vec<u64> = messages
        .iter()
        .map(|m| message_tokens(counter, m))
        .collect();
    let total: u64 = 3 + costs.iter().sum::<u64>();
    if total <= limit {
        return Some(vec![messages]);
    }
    let prefix = messages
        .iter()
        .take_while(|m| m.role == Role::System)
        .count();
    // In bounds: `costs` has one entry per message, `prefix` counts
    // messages, and every turn's `from..to` is a run of message positions
    // (`to` at most `messages.len()`), pushed in order.
    let base: u64 = 3 + costs[..prefix].iter().sum::<u64>();
    // Turns: runs of messages ending on a plain assistant reply.
    let mut turns: Vec<(usize, usize, u64)> = Vec::new();
    let mut start = prefix;
    let mut cost = 0u64;
    for (i, m) in messages.iter().enumerate().skip(prefix) {
        cost += costs[i];
        if m.role == Role::Assistant && m.tool_calls.is_none() {
            if base + cost > limit {
                return None;
            }
            turns.push((start, i + 1, cost));
            start = i + 1;
            cost = 0;
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < turns.len() {
        let (from, mut to, mut used) = (turns[i].0, turns[i].1, base + turns[i].2);
        i += 1;
        while i < turns.len() && used + turns[i].2 <= limit {
            used += turns[i].2;
            to = turns[i].1;
            i += 1;
        }
        let mut window = messages[..prefix].to_vec();
        window.extend_from_slice(&messages[from..to]);
        out.push(window);
    }
    Some(out)
}
