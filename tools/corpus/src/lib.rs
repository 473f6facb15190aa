//! A synthetic export corpus for benchmarks, the large-run demo and the
//! fan-out tests: mixed Spanish/English support chats with emoji,
//! numbers, made-up words (so not every word is in a small vocabulary),
//! some PII, tool calls, and a share of messy lines.

use std::io::{BufWriter, Write};
use std::path::Path;

const WORDS: &[&str] = &[
    "hola",
    "gracias",
    "pedido",
    "envío",
    "devolución",
    "tarjeta",
    "cuenta",
    "problema",
    "ayuda",
    "mañana",
    "¿cuándo",
    "llega",
    "está",
    "información",
    "dirección",
    "cambiar",
    "the",
    "order",
    "refund",
    "delivery",
    "account",
    "password",
    "reset",
    "please",
    "thanks",
    "customer",
    "support",
    "invoice",
    "payment",
    "shipping",
    "tracking",
    "number",
    "today",
    "tomorrow",
    "week",
    "can",
    "you",
    "help",
    "me",
    "with",
    "my",
    "I",
    "need",
    "to",
    "is",
    "was",
    "not",
    "yet",
    "already",
    "when",
    "where",
    "why",
    "how",
    "👍",
    "😀",
    "🙏",
    "…",
    "—",
    "¡genial!",
    "perfecto",
    "claro",
    "vale",
    "entiendo",
    "lo",
    "siento",
    "disculpa",
    "momento",
    "revisando",
    "sistema",
    "We're",
    "sorry",
    "I've",
    "checked",
    "it'll",
    "arrive",
    "Monday",
    "Friday",
    "café",
    "niño",
    "año",
    "señor",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn sentence(rng: &mut Rng, out: &mut String) {
    let n = 6 + rng.below(30);
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        match rng.below(20) {
            0 => out.push_str(&format!("#{}", rng.below(1_000_000))),
            1 => {
                // A made-up word: the long tail real vocabularies have.
                const SYL: &[&str] =
                    &["ka", "lo", "mi", "tra", "zen", "qu", "ri", "os", "ul", "ex"];
                for _ in 0..2 + rng.below(3) {
                    out.push_str(SYL[rng.below(SYL.len() as u64) as usize]);
                }
            }
            2 if rng.below(10) == 0 => out.push_str("ana.garcia@example.com"),
            _ => out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]),
        }
    }
    out.push_str(if rng.below(3) == 0 { "?" } else { "." });
}

/// One export file: its key (`conversations/{tenant}/2026/10/DD/part-NNNN.jsonl`)
/// and its bytes.
pub struct ExportFile {
    pub key: String,
    pub bytes: Vec<u8>,
}

/// About `bytes` of exports for `tenant`, file by file (each at most
/// `file_bytes`, spread over the 28 first days of October 2026), from
/// `seed`: the same arguments always give the same files. One file is in
/// memory at a time.
pub struct Corpus {
    rng: Rng,
    tenant: String,
    seed: u64,
    bytes: u64,
    file_bytes: u64,
    written: u64,
    file_no: u32,
    n: u64,
}

impl Corpus {
    pub fn new(tenant: &str, bytes: u64, file_bytes: u64, seed: u64) -> Self {
        Self {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            tenant: tenant.to_owned(),
            seed,
            bytes,
            file_bytes: file_bytes.max(1),
            written: 0,
            file_no: 0,
            n: 0,
        }
    }
}

impl Iterator for Corpus {
    type Item = ExportFile;

    fn next(&mut self) -> Option<ExportFile> {
        if self.written >= self.bytes {
            return None;
        }
        let (rng, seed) = (&mut self.rng, self.seed);
        let day = 1 + self.file_no % 28;
        let key = format!(
            "conversations/{}/2026/10/{day:02}/part-{:04}.jsonl",
            self.tenant, self.file_no
        );
        let mut out = Vec::new();
        while (out.len() as u64) < self.file_bytes && self.written + (out.len() as u64) < self.bytes
        {
            self.n += 1;
            let n = self.n;
            let mut line = String::with_capacity(4096);
            if rng.below(200) == 0 {
                line.push_str("{\"id\": \"broken\", \"messages\": [");
            } else {
                let mut messages = vec![
                    serde_json::json!({"role": "system", "content": "You are a helpful support agent for Acme. Answer briefly."}),
                ];
                for t in 0..1 + rng.below(6) {
                    let mut u = String::new();
                    sentence(rng, &mut u);
                    let mut a = String::new();
                    sentence(rng, &mut a);
                    sentence(rng, &mut a);
                    messages.push(serde_json::json!({"role": "user", "content": u}));
                    if t == 0 && rng.below(10) == 0 {
                        messages.push(serde_json::json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": format!("{{\"order\":{}}}", rng.below(100000))}}]}));
                        messages.push(serde_json::json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"status\":\"shipped\"}"}));
                    }
                    messages.push(serde_json::json!({"role": "assistant", "content": a}));
                }
                let outcome = ["resolved", "resolved", "resolved", "escalated", "abandoned"]
                    [rng.below(5) as usize];
                let v = serde_json::json!({"id": format!("conv-{seed}-{n}"), "started_at": format!("2026-10-{day:02}T10:00:00Z"),
                    "channel": "whatsapp", "outcome": outcome, "rating": 1 + rng.below(5), "messages": messages});
                line.push_str(&v.to_string());
            }
            line.push('\n');
            out.extend_from_slice(line.as_bytes());
        }
        self.written += out.len() as u64;
        self.file_no += 1;
        Some(ExportFile { key, bytes: out })
    }
}

/// Writes about `bytes` of exports under OUTPUT/conversations/{tenant}/2026/10/DD/
/// (files of at most 64 MB).
pub fn corpus(output: &Path, tenant: &str, bytes: u64, seed: u64) -> std::io::Result<()> {
    for file in Corpus::new(tenant, bytes, 64_000_000, seed) {
        let path = output.join(&file.key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut w = BufWriter::new(std::fs::File::create(path)?);
        w.write_all(&file.bytes)?;
        w.flush()?;
    }
    Ok(())
}
