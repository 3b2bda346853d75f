//! Human output: the health table, log lines, status and trace screens.
//! Knows the snapshot types, nothing about how they were collected; numbers
//! are formatted by `crate::units`.
pub mod health;
pub mod log;
pub mod status;
pub mod table;
pub mod trace;

/// Strings that come from containers (names, comm, paths) may hold terminal
/// control sequences; never let them reach the terminal raw.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(sanitize("web\x1b[2J\n"), "web?[2J?");
        assert_eq!(sanitize("café"), "café");
    }
}
