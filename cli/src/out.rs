//! Printing. Everything a token or a server wrote passes through [`safe`] first, so a
//! crafted claim cannot move the terminal's cursor, recolour it, or reorder text (bidi
//! controls).

use std::io::Write;

use serde_json::Value;

/// `text` with control characters (C0, DEL, C1) and bidirectional formatting characters
/// written as `\uXXXX`, which is also a valid escape inside JSON strings. Tabs and newlines
/// that the command itself writes are kept; the ones in a token's values reach this
/// function already escaped by serde_json or [`quoted`].
pub fn safe(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() && c != '\n' && c != '\t') || bidi {
            safe.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            safe.push(c);
        }
    }
    safe
}

/// A value from a token or a server, quoted and escaped as a JSON string is (so a newline
/// shows as `\n`, and nothing can end the line early).
pub fn quoted(text: &str) -> String {
    Value::from(text).to_string()
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

/// Print an error message on standard error.
pub fn error(message: &str) {
    eprintln!("mka1-auth: {}", safe(message));
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
        // The escapes keep JSON valid.
        let json = safe(&serde_json::json!({"k": "\u{202e}\u{7f}"}).to_string());
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["k"], "\u{202e}\u{7f}");
    }
}
