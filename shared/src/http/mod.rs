//! Shared HTTP plumbing for the API functions: the entry point that turns
//! API Gateway's event into a request, the tenant from its JWT authorizer,
//! routing, JSON and problem+json responses, and the handlers each
//! function's `main` calls. Every route, the webhook included, goes
//! through one request wrapper (the `request` span, one closing line with
//! `status` and `duration_ms`).
//!
//! | method | path                         | function   | handler                |
//! |--------|------------------------------|------------|------------------------|
//! | POST   | `/runs`                      | start-run  | [`start_run_handler`]  |
//! | GET    | `/runs`                      | job-status | [`job_status_handler`] |
//! | GET    | `/runs/{id}`                 | job-status | [`job_status_handler`] |
//! | GET    | `/runs/{id}/events`          | job-status | [`job_status_handler`] |
//! | GET    | `/runs/{id}/metrics`         | job-status | [`job_status_handler`] (JSON, or SVG by `Accept`) |
//! | GET    | `/runs/{id}/evaluation`      | job-status | [`job_status_handler`] |
//! | GET    | `/datasets/{id}`             | job-status | [`job_status_handler`] |
//! | GET    | `/datasets/{id}/download`    | job-status | [`job_status_handler`] (a presigned URL) |
//! | POST   | `/runs/{id}/cancel`          | cancel     | [`cancel_handler`]     |
//! | POST   | `/webhooks/openai`           | webhook    | [`webhook_handler`]    |
//! | GET    | `/models`, `/models/active`, `/models/{id}` | models | [`models_handler`] |
//! | POST   | `/models/{id}/activate`      | models     | [`models_handler`]     |
//! | GET    | `/models/{id}/download`      | models     | [`models_handler`] (a presigned URL) |
//! | DELETE | `/models/{id}`               | models     | [`models_handler`]     |
//!
//! [`ROUTES`] is the same list as data; `tests/it/openapi.rs` holds it
//! to `docs/openapi.yaml`, and `docs/api.md` describes each answer.

pub mod gateway;
mod handlers;
mod mapping;
pub mod problem;
pub mod request;
pub mod routes;
mod webhook;

pub use gateway::serve;
pub use handlers::{cancel_handler, job_status_handler, json, models_handler, start_run_handler};
pub use problem::{ApiError, InternalCause, PROBLEM_JSON, Problem};
pub use routes::{ROUTES, Route, route};
pub use webhook::webhook_handler;
