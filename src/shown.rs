//! Text from outside (a token, a key set) as a log shows it: quoted, escaped and cut short.
//!
//! Every value from a token or key set that reaches a `tracing` field goes through
//! [`Shown`] (or [`ShownList`]), recorded with `?` (its `Debug`): a `\n` in a hostile `iss`
//! cannot start a forged log line, a bidi control cannot reorder the line on a terminal, and
//! a 100 kB `kid` costs the log 100 characters.

use std::fmt::{self, Write};

/// The most characters of one value a log shows; longer values end in `…` after the quote.
pub(crate) const MAX_SHOWN_CHARS: usize = 100;

/// The most items of one list a log shows; longer lists end in `…`.
pub(crate) const MAX_SHOWN_ITEMS: usize = 8;

/// One outside value for a log field (`field = ?Shown(text)`): its `Debug` writes it in
/// double quotes, at most [`MAX_SHOWN_CHARS`] characters, with quotes, backslashes, every
/// control character (C0, DEL, C1), the line and paragraph separators and the bidi controls
/// escaped as `\n`, `\r`, `\t` or `\u{..}`.
#[derive(Clone, Copy)]
pub(crate) struct Shown<'a>(pub(crate) &'a str);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(MAX_SHOWN_CHARS) {
            write_escaped(f, c)?;
        }
        f.write_char('"')?;
        if chars.next().is_some() {
            f.write_char('…')?;
        }
        Ok(())
    }
}

/// A list of outside values for a log field: at most [`MAX_SHOWN_ITEMS`], each [`Shown`].
#[derive(Clone, Copy)]
pub(crate) struct ShownList<'a, T>(pub(crate) &'a [T]);

impl<T: AsRef<str>> fmt::Debug for ShownList<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('[')?;
        for (i, item) in self.0.iter().take(MAX_SHOWN_ITEMS).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            Shown(item.as_ref()).fmt(f)?;
        }
        if self.0.len() > MAX_SHOWN_ITEMS {
            f.write_str(", …")?;
        }
        f.write_char(']')
    }
}

/// Whether `c` must not reach a log or terminal as it is: a control character (C0, DEL,
/// C1), a line or paragraph separator, or a bidi control (which reorders what follows it).
pub(crate) fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

fn write_escaped(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        '"' => f.write_str("\\\""),
        '\\' => f.write_str("\\\\"),
        c if must_escape(c) => write!(f, "\\u{{{:x}}}", u32::from(c)),
        c => f.write_char(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        format!("{:?}", Shown(text))
    }

    #[test]
    fn escapes_what_could_forge_or_reorder_a_line() {
        assert_eq!(shown("plain"), r#""plain""#);
        assert_eq!(shown("a\nb\r\tc"), r#""a\nb\r\tc""#);
        assert_eq!(shown("q\"b\\"), r#""q\"b\\""#);
        assert_eq!(
            shown("\u{1b}[31m\u{7}\u{7f}\u{85}"),
            r#""\u{1b}[31m\u{7}\u{7f}\u{85}""#
        );
        assert_eq!(
            shown("\u{202e}\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}\u{2028}"),
            r#""\u{202e}\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}\u{2028}""#
        );
        assert_eq!(shown("é日本"), "\"é日本\"");
    }

    #[test]
    fn cuts_long_values_and_lists() {
        let exact = "x".repeat(MAX_SHOWN_CHARS);
        assert_eq!(shown(&exact), format!("\"{exact}\""));
        let long = "y".repeat(10_000);
        assert_eq!(
            shown(&long),
            format!("\"{}\"…", "y".repeat(MAX_SHOWN_CHARS))
        );

        let items: Vec<String> = (0..20).map(|i| format!("a{i}")).collect();
        let listed = format!("{:?}", ShownList(&items));
        assert!(listed.starts_with(r#"["a0", "a1""#), "{listed}");
        assert!(listed.ends_with(r#""a7", …]"#), "{listed}");
        assert_eq!(format!("{:?}", ShownList::<&str>(&[])), "[]");
    }
}
