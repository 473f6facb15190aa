//! What `bench-init` (`make bench`) and `package-smoke` (`make package`)
//! share: the local stand-in for the Lambda Runtime API and the local stack
//! the functions start against.

pub mod runtime;
pub mod stack;
