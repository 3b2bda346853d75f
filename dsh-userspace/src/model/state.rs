//! Container states, spelled as the product contract says.
use std::fmt;

use serde::{Deserialize, Serialize};

/// A container's lifecycle state. Operators grep these names: keep the
/// spelling exactly as the contract has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    #[serde(rename = "kContainerPulling")]
    Pulling,
    #[serde(rename = "kContainerBooting")]
    Booting,
    #[serde(rename = "kContainerRunning")]
    Running,
    #[serde(rename = "kContainerError")]
    Error,
    #[serde(rename = "kContainerExited")]
    Exited,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pulling => "kContainerPulling",
            State::Booting => "kContainerBooting",
            State::Running => "kContainerRunning",
            State::Error => "kContainerError",
            State::Exited => "kContainerExited",
        }
    }

    /// Running or about to: listed by `dsh ps` without `-a`.
    pub fn is_live(self) -> bool {
        matches!(self, State::Pulling | State::Booting | State::Running)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(State::Error.to_string(), "kContainerError");
        assert_eq!(
            serde_json::to_string(&State::Running).unwrap(),
            "\"kContainerRunning\""
        );
    }
}
