//! What the user hands the command: a token (an argument or standard input), a file.

use std::io::Read;
use std::path::Path;

use crate::Failure;

/// The most read from standard input for a token; far above any token a verifier accepts.
const MAX_STDIN_BYTES: u64 = 1024 * 1024;
/// The most read from a JWKS file.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The token from `arg`, or from standard input when it is `-`: surrounding whitespace and a
/// `Bearer ` prefix (any case, as pasted from a header) removed.
pub fn token(arg: &str) -> Result<String, Failure> {
    let text = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_STDIN_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| {
                Failure::Usage(format!("could not read a token from standard input: {e}"))
            })?;
        text
    } else {
        arg.to_owned()
    };
    let token = strip_bearer(text.trim()).trim();
    if token.is_empty() {
        return Err(Failure::Usage("no token was given".into()));
    }
    Ok(token.to_owned())
}

/// `value` without a leading `Bearer` word (any case) and the whitespace after it.
pub fn strip_bearer(value: &str) -> &str {
    let value = value.trim_start();
    let (first, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if first.eq_ignore_ascii_case("bearer") {
        rest.trim_start()
    } else {
        value
    }
}

/// A text file, or a usage error that names it.
pub fn file(path: &Path) -> Result<String, Failure> {
    let unreadable =
        |e: std::io::Error| Failure::Usage(format!("cannot read {}: {e}", path.display()));
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(unreadable)?
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_prefix_and_whitespace_are_dropped() {
        assert_eq!(token("  a.b.c\n").unwrap(), "a.b.c");
        assert_eq!(token("Bearer a.b.c").unwrap(), "a.b.c");
        assert_eq!(token("bearer  a.b.c").unwrap(), "a.b.c");
        assert_eq!(strip_bearer("Bear"), "Bear");
        assert_eq!(strip_bearer("Bearer"), "");
        assert_eq!(strip_bearer("Bearerx.y.z"), "Bearerx.y.z");
        assert_eq!(strip_bearer("é"), "é");
        assert!(matches!(token("Bearer "), Err(Failure::Usage(_))));
        assert!(matches!(token(""), Err(Failure::Usage(_))));
    }
}
