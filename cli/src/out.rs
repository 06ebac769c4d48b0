//! Printing. Every value from outside (a token, a key set, a server) is shown through
//! [`quoted`] (a string) or [`json_text`] (any JSON value): quoted, with `\n`, `\r`, `\t`,
//! every other control character (C0 such as ESC and BEL, DEL, C1), the line and paragraph
//! separators and the bidi controls (U+061C, U+200E, U+200F, U+202A-U+202E,
//! U+2066-U+2069) escaped. So a crafted claim or key cannot end a line early and forge the
//! next, move the terminal's cursor, recolour it, or reorder text.
//!
//! Whole outputs pass through [`safe`] too, in text and JSON mode alike (JSON is read on
//! terminals as well): it escapes the same characters as `\uXXXX`, a valid escape inside
//! JSON strings, and keeps only the newlines and tabs the command itself writes.

use std::fmt::Write as _;
use std::io::Write;

use serde_json::Value;

/// Whether `c` is never printed as it is: a control character (C0, DEL, C1), a line or
/// paragraph separator, or a bidi control (which reorders the text that follows it).
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every [`must_escape`] character written as `\uXXXX` (all of them lie in the
/// Basic Multilingual Plane), except newlines and tabs when `keep_layout`.
fn escaped(text: &str, keep_layout: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if must_escape(c) && !(keep_layout && (c == '\n' || c == '\t')) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// A whole output: every character [`quoted`] escapes, but the newlines and tabs the command
/// itself writes (the ones in a token's values reach this function already escaped by
/// [`quoted`] or [`json_text`]).
pub fn safe(text: &str) -> String {
    escaped(text, true)
}

/// A value from a token, a key set or a server, in double quotes and escaped as a JSON
/// string is (`\n`, `\r`, `\t`, `\"`, `\\`), with every other control, separator and bidi
/// character as `\uXXXX`: one line, whatever the value holds.
pub fn quoted(text: &str) -> String {
    json_text(&Value::from(text))
}

/// Any JSON value from a token or a key set, as compact JSON with its strings escaped as
/// [`quoted`] escapes them: one line.
pub fn json_text(value: &Value) -> String {
    escaped(&value.to_string(), false)
}

/// Print `text` (one or more lines) on standard output.
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = stdout.write_all(safe(text).as_bytes());
    let _ = stdout.flush();
}

/// Print `value` as pretty JSON on standard output.
pub fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    print(&format!("{text}\n"));
}

/// Print an error message (one line) on standard error.
pub fn error(message: &str) {
    eprintln!("mka1-auth: {}", escaped(message, false));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped() {
        assert_eq!(safe("a\u{1b}[2Jb"), "a\\u001b[2Jb");
        assert_eq!(safe("x\u{202e}y\u{9b}"), "x\\u202ey\\u009b");
        assert_eq!(safe("line\n\tnext"), "line\n\tnext");
        assert_eq!(quoted("a\nb\"c"), r#""a\nb\"c""#);
        assert_eq!(
            quoted("\r\t\u{7}\u{1b}\u{7f}\u{85}\u{61c}\u{200f}\u{2069}\u{2028}é"),
            r#""\r\t\u0007\u001b\u007f\u0085\u061c\u200f\u2069\u2028é""#
        );
        assert_eq!(json_text(&serde_json::json!(["x\ny", 1])), r#"["x\ny",1]"#);
        // The escapes keep JSON valid.
        let json = safe(&serde_json::json!({"k": "\u{202e}\u{7f}"}).to_string());
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["k"], "\u{202e}\u{7f}");
    }
}
