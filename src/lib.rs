//! paygate: an actor-based payment orchestrator. See README.md and docs/design.md.

pub mod actors;
pub mod api;
pub mod bench;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod domain;
pub mod egress;
pub mod protocol_primitives;
pub mod qr;
pub mod risk;
pub mod simulator;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod views;
pub mod webhook;
