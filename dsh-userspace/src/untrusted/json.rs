//! JSON output that is safe on a terminal and exact for a reader.
//!
//! serde_json escapes C0 controls, `"` and `\` but writes DEL, C1 controls
//! (U+009B is a CSI to many terminals) and bidirectional overrides raw.
//! These writers escape those too, as `\uXXXX`: the document still parses to
//! the very same strings.
use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter, PrettyFormatter, Serializer};

use super::is_unsafe;

/// A formatter that writes every unsafe character of a string as `\uXXXX`
/// and otherwise behaves as `F`.
struct Safe<F>(F);

/// Forwards formatter methods to the wrapped formatter unchanged.
macro_rules! forward {
    ($($m:ident($($a:ident: $t:ty),*);)*) => {$(
        fn $m<W: ?Sized + io::Write>(&mut self, w: &mut W $(, $a: $t)*) -> io::Result<()> {
            self.0.$m(w $(, $a)*)
        }
    )*};
}

impl<F: Formatter> Formatter for Safe<F> {
    forward! {
        begin_array();
        end_array();
        begin_array_value(first: bool);
        end_array_value();
        begin_object();
        end_object();
        begin_object_key(first: bool);
        end_object_key();
        begin_object_value();
        end_object_value();
        begin_string();
        end_string();
        write_char_escape(e: CharEscape);
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // Fragments hold no character serde_json escapes itself; split out
        // the ones it would have let through.
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe(c) {
                self.0.write_string_fragment(w, &fragment[start..i])?;
                // Every unsafe character is in the Basic Multilingual Plane.
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        self.0.write_string_fragment(w, &fragment[start..])
    }
}

/// One compact JSON document (a log line, an event).
pub fn to_writer<W: io::Write, T: Serialize + ?Sized>(w: W, v: &T) -> serde_json::Result<()> {
    v.serialize(&mut Serializer::with_formatter(w, Safe(CompactFormatter)))
}

/// One indented JSON document (a table, a report).
pub fn to_writer_pretty<W: io::Write, T: Serialize + ?Sized>(
    w: W,
    v: &T,
) -> serde_json::Result<()> {
    v.serialize(&mut Serializer::with_formatter(
        w,
        Safe(PrettyFormatter::new()),
    ))
}

pub fn to_string<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    to_writer(&mut out, v)?;
    // The serializer writes UTF-8 only.
    Ok(String::from_utf8(out).expect("JSON is UTF-8"))
}

pub fn to_string_pretty<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    to_writer_pretty(&mut out, v)?;
    Ok(String::from_utf8(out).expect("JSON is UTF-8"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unsafe_characters_are_escaped_and_the_value_is_exact() {
        let evil = "evil\x1b]0;t\x07\x7f\u{9b}2J\u{202e}é\"\\";
        let v = json!({ "id": evil, "list": [evil, 1, null] });
        for s in [to_string(&v).unwrap(), to_string_pretty(&v).unwrap()] {
            assert!(
                !s.chars().any(|c| is_unsafe(c) && c != '\n'),
                "raw control in {s:?}"
            );
            assert!(s.contains(r"\u001b") && s.contains(r"\u007f") && s.contains(r"\u009b"));
            assert!(s.contains(r"\u202e") && s.contains('é'));
            let back: serde_json::Value = serde_json::from_str(&s).unwrap();
            assert_eq!(back, v);
        }
    }

    #[test]
    fn formatting_follows_serde_json() {
        let v = json!({ "a": [1, 2], "b": { "c": "d" } });
        assert_eq!(to_string(&v).unwrap(), serde_json::to_string(&v).unwrap());
        assert_eq!(
            to_string_pretty(&v).unwrap(),
            serde_json::to_string_pretty(&v).unwrap()
        );
    }
}
