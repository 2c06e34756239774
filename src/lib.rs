//! paygate: an actor-based payment orchestrator. See README.md and ../shared/DESIGN.md.

pub mod actors;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod domain;
pub mod simulator;
pub mod store;
pub mod telemetry;
pub mod webhook;
