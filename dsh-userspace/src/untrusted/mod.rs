//! Text that did not come from dsh itself: the one gate to the terminal.
//!
//! dsh runs as root and prints what containers control: cgroup names (under
//! cgroup delegation a container picks them), comm strings, image and
//! container names, runtime errors. Any of them may carry terminal control
//! sequences (`ESC ]0;title BEL`, `CSI 2J`, a C1 `CSI`), bidirectional
//! overrides that reorder what the operator reads, invalid UTF-8 or a name
//! of kilobytes. Every such string goes through [`name`] (one value),
//! [`line`] (a message composed of values) or [`text`] (an error or log
//! record) before it reaches stdout or stderr in human form, and through
//! [`json`] in JSON form.
//!
//! The rules:
//! - C0 controls, DEL and C1 controls (Unicode `Cc`), the bidirectional
//!   formatting characters and the Unicode line/paragraph separators become
//!   visible escapes: `\x1b`, `\x7f`, `\u{9b}`, `\u{202e}`. Nothing else is
//!   touched (a systemd unit's literal `\x2d` stays as it is).
//! - Invalid UTF-8 is escaped where bytes first become text
//!   ([`from_utf8_escaped`]): each bad byte is `\xNN`, so two names that
//!   differ only there stay distinct.
//! - A value longer than [`MAX_NAME_CHARS`] (a message: [`MAX_LINE_CHARS`])
//!   after escaping is cut in the middle, `head…tail`: the tail of a cgroup
//!   path is its container id.
//! - JSON keeps the exact value: the same characters are written as `\uXXXX`
//!   escapes, which any JSON reader turns back into the original string.
pub mod json;

use std::borrow::Cow;

/// The longest a single untrusted value is shown, in characters: a
/// Kubernetes systemd cgroup path (about 190) fits whole.
pub const MAX_NAME_CHARS: usize = 256;

/// Whether `c` must not reach a terminal as it is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Bidirectional formatting: ALM, LRM, RLM, LRE..RLO, LRI..PDI.
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            // Line and paragraph separators.
            | '\u{2028}' | '\u{2029}'
        )
}

/// The longest a message holding untrusted values (a log line's msg) is
/// shown, in characters.
pub const MAX_LINE_CHARS: usize = 1024;

/// One untrusted value (a name, path, comm, image): escaped, and cut in
/// the middle if longer than [`MAX_NAME_CHARS`].
pub fn name(s: &str) -> Cow<'_, str> {
    gate(s, MAX_NAME_CHARS)
}

/// A message composed of untrusted values (a log line's msg: `exec PATH`):
/// escaped, and cut in the middle if longer than [`MAX_LINE_CHARS`].
pub fn line(s: &str) -> Cow<'_, str> {
    gate(s, MAX_LINE_CHARS)
}

/// A line or message that holds untrusted values (an error, a log record):
/// escaped, never cut (the values in it were cut when it was composed).
pub fn text(s: &str) -> Cow<'_, str> {
    gate(s, usize::MAX)
}

/// Bytes from the kernel or a file as text: valid UTF-8 as it is, each
/// byte of an invalid sequence as `\xNN`. Control characters stay (this is
/// a decoder; [`name`] and [`text`] are the gate).
pub fn from_utf8_escaped(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    Cow::Owned(out)
}

/// The visible form of one unsafe character.
fn escape(c: char) -> String {
    if c.is_ascii() {
        format!("\\x{:02x}", c as u32)
    } else {
        format!("\\u{{{:x}}}", c as u32)
    }
}

fn gate(s: &str, max: usize) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) && (max == usize::MAX || s.chars().count() <= max) {
        return Cow::Borrowed(s);
    }
    // Each character as it will be shown; cuts fall between them, never
    // inside an escape.
    let pieces: Vec<Cow<'_, str>> = s
        .char_indices()
        .map(|(i, c)| {
            if is_unsafe(c) {
                Cow::Owned(escape(c))
            } else {
                Cow::Borrowed(&s[i..i + c.len_utf8()])
            }
        })
        .collect();
    let width = |p: &Cow<'_, str>| p.chars().count();
    let total: usize = pieces.iter().map(width).sum();
    if total <= max {
        return Cow::Owned(pieces.concat());
    }
    // head + "…" + tail fits in `max`.
    let room = max.saturating_sub(1);
    let (mut head, mut head_w) = (0, 0);
    while head < pieces.len() && head_w + width(&pieces[head]) <= room / 2 {
        head_w += width(&pieces[head]);
        head += 1;
    }
    let (mut tail, mut tail_w) = (pieces.len(), 0);
    while tail > head && tail_w + width(&pieces[tail - 1]) <= room - head_w {
        tail -= 1;
        tail_w += width(&pieces[tail]);
    }
    let mut out = pieces[..head].concat();
    out.push('…');
    out.push_str(&pieces[tail..].concat());
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a terminal must never receive: C0 (but newline), DEL, C1 in
    /// UTF-8 (0xc2 0x80..0x9f).
    fn raw_control(bytes: &[u8]) -> Option<usize> {
        bytes.iter().enumerate().position(|(i, &b)| {
            (b < 0x20 && b != b'\n')
                || b == 0x7f
                || (b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..0xa0).contains(n)))
        })
    }

    #[test]
    fn controls_become_visible_escapes() {
        let evil = "evil\x1b[31mRED\x1b]0;title\x07\u{9b}2J\x7f\u{202e}gnp.exe";
        assert_eq!(
            name(evil),
            "evil\\x1b[31mRED\\x1b]0;title\\x07\\u{9b}2J\\x7f\\u{202e}gnp.exe"
        );
        assert_eq!(raw_control(name(evil).as_bytes()), None);
        assert_eq!(text("a\tb\nc"), "a\\x09b\\x0ac");
    }

    #[test]
    fn clean_text_is_borrowed_unchanged() {
        for s in [
            "web",
            "café ünïcode",
            "/system.slice/system-getty\\x2dstatic.slice",
            "",
        ] {
            assert!(matches!(name(s), Cow::Borrowed(b) if b == s), "{s}");
        }
    }

    #[test]
    fn invalid_utf8_bytes_are_escaped_and_stay_distinct() {
        assert_eq!(from_utf8_escaped(b"a\xffb"), "a\\xffb");
        assert_eq!(from_utf8_escaped(b"a\xfeb"), "a\\xfeb");
        assert_eq!(from_utf8_escaped(b"\xe2\x82"), "\\xe2\\x82"); // truncated sequence
        assert_eq!(from_utf8_escaped("ok é".as_bytes()), "ok é");
    }

    #[test]
    fn long_names_are_cut_in_the_middle() {
        let long = format!("/{}{}", "a".repeat(4000), "/docker-id");
        let shown = name(&long);
        assert_eq!(shown.chars().count(), MAX_NAME_CHARS);
        assert!(shown.starts_with("/aaa") && shown.ends_with("aaa/docker-id"));
        assert!(shown.contains('…'));
        // Escapes are never split by the cut, and their width counts.
        let escapes = "\x1b".repeat(1000);
        let shown = name(&escapes);
        assert!(shown.chars().count() <= MAX_NAME_CHARS, "{shown}");
        let (head, tail) = shown.split_once('…').unwrap();
        assert!(head.len().is_multiple_of(4) && tail.len().is_multiple_of(4));
        // `text` never cuts.
        assert_eq!(text(&long).len(), long.len());
    }

    #[test]
    fn the_gate_is_idempotent() {
        for s in ["x\x1by", "\u{9b}", &"\x07".repeat(300), "plain"] {
            let once = name(s).into_owned();
            assert_eq!(name(&once), once);
        }
    }
}
