//! Support for the integration tests: the built plugin binaries on `PATH` and the real kubectl.

pub mod apiserver;
pub mod plugins;
pub mod s3;
