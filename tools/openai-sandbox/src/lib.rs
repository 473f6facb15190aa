//! The local OpenAI fine-tuning API sandbox (being built).
