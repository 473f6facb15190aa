//! Ids in OpenAI's style: a kind prefix and 24 random base62 characters.

use rand::Rng;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    for _ in 0..24 {
        id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    id
}

pub const FILE: &str = "file-";
pub const JOB: &str = "ftjob-";
pub const UPLOAD: &str = "upload_";
pub const PART: &str = "part_";
pub const EVENT: &str = "ftevent-";
pub const CHECKPOINT: &str = "ftckpt_";
pub const REQUEST: &str = "req_";
pub const CHAT_COMPLETION: &str = "chatcmpl-";
pub const TOOL_CALL: &str = "call_";
