//! Integration tests against the local stack. One binary, a module per area.

mod blob;
mod openai;
mod openai_contract;
mod store;
