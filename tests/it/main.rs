//! Integration tests against the local stack. One binary, a module per area.

mod api;
mod bedrock;
mod blob;
mod dataset;
mod logs;
mod metrics;
mod models;
mod openai;
mod openai_contract;
mod openapi;
mod pipeline;
mod sandbox_chat;
mod secret;
mod store;
mod webhook;
