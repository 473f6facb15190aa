//! Integration tests against the local stack. One binary, a module per area.

mod api;
mod blob;
mod store;
