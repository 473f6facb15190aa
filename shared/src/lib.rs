//! The fine-tuning pipeline's library: every Lambda function links it and
//! keeps only its event plumbing in `main.rs`.
//!
//! - [`domain`]: runs, datasets, jobs, events and their ids (pure).
//! - [`store`]: their records in DynamoDB.
//! - [`blob`]: conversation exports and dataset files in S3.
//! - [`chart`]: a run's loss curve as SVG.
//! - [`dataset`]: conversations to a checked, token-counted training set.
//! - [`evaluation`]: the pure core of judging a trained model against the
//!   tenant's current one (examples, metric, statistics, decision).
//! - [`config`]: every environment variable, read once.
//! - [`provider`]: the `FineTuningProvider` port and its adapters.
//! - [`api`]: the HTTP API's operations (runs, datasets, models), free of
//!   HTTP types.
//! - [`http`]: API Gateway plumbing: tenant, routes, problem+json, handlers.
//! - [`pipeline`]: the reconciler that advances runs, the scheduled ticks
//!   of the prepare, monitor and evaluate functions, the pushes of the
//!   webhook and Bedrock's job events, and the prepare-shard function's
//!   shard worker.
//! - [`metrics`]: CloudWatch Embedded Metric Format lines (a run's training
//!   curve is [`domain::curve`] and its record `store::curve`).
//! - [`secret`]: the API key and webhook secret, read on first use.
//! - [`telemetry`]: logging set-up for the functions.
//! - [`webhook`]: provider pushes (signed OpenAI webhooks, Bedrock events).
//! - [`aws`], [`tls`]: the SDK's configuration and HTTPS client, ring as
//!   the one TLS crypto provider.
//!
//! No `unwrap`/`expect` outside tests: a panic in a function ends its
//! container (the release profile aborts), so every failure is a typed
//! error. An exception at init, on a value fixed at build time, would say
//! why with an `allow` and its reason (there is none today).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod aws;
pub mod blob;
pub mod chart;
pub mod config;
pub mod dataset;
pub mod domain;
pub mod evaluation;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod provider;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod webhook;
