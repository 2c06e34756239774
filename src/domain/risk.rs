//! The outcome of the pre-payment risk check, kept on the order so operators can see why an
//! order was flagged. Only `allow` and `review` decisions are ever stored: a `deny` creates
//! nothing.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RiskOutcome {
    Allow,
    Review,
    Deny,
}

impl RiskOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskOutcome::Allow => "allow",
            RiskOutcome::Review => "review",
            RiskOutcome::Deny => "deny",
        }
    }
}

/// A decision and the stable reason codes of the rules that produced it (empty for a
/// plain `allow`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskDecision {
    pub outcome: RiskOutcome,
    pub reasons: Vec<String>,
}

impl RiskDecision {
    pub fn allow() -> Self {
        RiskDecision {
            outcome: RiskOutcome::Allow,
            reasons: Vec::new(),
        }
    }
}
