//! Actors (DESIGN §3). Each owns one piece of state and is driven by messages.

pub mod notifier;
