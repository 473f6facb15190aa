//! Integration tests against the local stack. One binary, a module per area.

mod api;
mod bedrock;
mod bedrock_deployment;
mod bedrock_serving;
mod blob;
mod contract_schemas;
mod dataset;
mod evaluation;
mod fanout;
mod gateway;
mod inference;
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
mod template;
mod together;
mod together_contract;
mod webhook;
mod world;
