//! The onward path: taken from the raw, still-encoded request path, refused when any segment
//! could mean "this directory" or "the parent directory" to anyone who reads it later.
//!
//! Servers disagree about what a path means. RFC 3986 (5.2.4) removes `.` and `..` segments;
//! the WHATWG URL parser (reqwest's `url`) also reads `%2e` as `.` and `\` as `/`; some
//! servers decode twice (`%252e`), read `;` as the start of path parameters (`..;x`), accept
//! overlong UTF-8 (`%c0%ae`) or fold full-width dots (U+FF0E). A segment that any of them
//! could take for a dot segment is refused, so what reaches the upstream stays under its
//! prefix whoever parses it. Everything else is passed on byte for byte: `%2F`, `%3F` and
//! `%23` stay encoded and never become separators, a query or a fragment.

use std::borrow::Cow;

/// How many layers of percent-encoding are looked through (`%25252e` is three).
const DECODE_ROUNDS: usize = 3;

/// Why a path cannot be forwarded. Lowercase, and never repeats the path.
pub(crate) type PathRefusal = &'static str;

/// Join `rest` (the raw path after any stripped prefix: empty or starting with `/`) and the
/// raw `query` onto the upstream's `prefix` (empty, or `/…` without a trailing `/`).
///
/// Fails when `rest` holds a segment that could be read as a dot segment, a backslash, a
/// control character, an invalid or over-deep percent-encoding, or bytes that are not UTF-8.
pub(crate) fn join(prefix: &str, rest: &str, query: Option<&str>) -> Result<String, PathRefusal> {
    for segment in rest.split('/') {
        check_segment(segment)?;
    }
    let query_len = query.map_or(0, |q| q.len() + 1);
    let rest_len = if rest.is_empty() && prefix.is_empty() {
        1
    } else {
        rest.len()
    };
    // Exactly the capacity needed: `Bytes::from` then takes the buffer without copying it.
    let mut out = String::with_capacity(prefix.len() + rest_len + query_len);
    out.push_str(prefix);
    if !rest.is_empty() {
        out.push_str(rest);
    } else if prefix.is_empty() {
        out.push('/');
    }
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    debug_assert!(out.starts_with(prefix) && out.len() == out.capacity());
    Ok(out)
}

/// Check the path of a configured upstream base URL with the same rules.
pub(crate) fn check_path(path: &str) -> Result<(), PathRefusal> {
    path.split('/').try_for_each(check_segment)
}

/// One raw segment (between two `/`).
fn check_segment(raw: &str) -> Result<(), PathRefusal> {
    let plain = !raw
        .bytes()
        .any(|b| matches!(b, b'%' | b';' | b'\\') || !b.is_ascii() || b.is_ascii_control());
    if plain {
        return match raw {
            "." | ".." => Err("the path has a dot segment"),
            _ => Ok(()),
        };
    }
    if raw.contains('\\') {
        return Err("the path has a backslash, which some servers read as `/`");
    }
    let mut text = Cow::Borrowed(raw.as_bytes());
    for _ in 0..=DECODE_ROUNDS {
        let decoded = percent_decode(&text)?;
        let changed = decoded.len() != text.len();
        check_decoded(&decoded)?;
        if !changed {
            return Ok(());
        }
        text = Cow::Owned(decoded);
    }
    Err("the path is percent-encoded too many times over")
}

/// The checks on one decoding of a segment.
fn check_decoded(bytes: &[u8]) -> Result<(), PathRefusal> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        // Overlong forms such as `%c0%ae` (a dot to some decoders) are not UTF-8.
        return Err("the path decodes to bytes that are not utf-8");
    };
    if text.chars().any(char::is_control) {
        return Err("the path has a control character");
    }
    // Full-width and other look-alike dots and slashes that Unicode normalization folds.
    let folded = text.chars().map(|c| match c {
        '\u{FF0E}' | '\u{FE52}' | '\u{2024}' => '.',
        '\u{FF0F}' | '\u{2215}' | '\u{2044}' | '\u{FF3C}' | '\\' => '/',
        c => c,
    });
    let folded: String = folded.collect();
    let dot_segment = folded
        .replace('\u{2025}', "..")
        .split('/')
        .map(|piece| piece.split(';').next().unwrap_or(""))
        .any(|piece| piece == "." || piece == "..");
    if dot_segment {
        return Err("the path has a dot segment");
    }
    Ok(())
}

/// Decode `%XX` escapes once. A `%` without two hex digits after it is refused: servers
/// disagree about what it means.
fn percent_decode(bytes: &[u8]) -> Result<Vec<u8>, PathRefusal> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
            _ => return Err("the path has a `%` that is not a percent-encoding"),
        }
        i += 3;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_join_byte_for_byte() {
        assert_eq!(join("/base", "/echo/a", None).unwrap(), "/base/echo/a");
        assert_eq!(join("/base", "", None).unwrap(), "/base");
        assert_eq!(join("", "", None).unwrap(), "/");
        assert_eq!(join("", "/x/", Some("a=1&b")).unwrap(), "/x/?a=1&b");
        assert_eq!(
            join("/base", "/a%3Fadmin=1/b%23f/c%2Fd", Some("q=%2e%2e")).unwrap(),
            "/base/a%3Fadmin=1/b%23f/c%2Fd?q=%2e%2e"
        );
        assert_eq!(join("/b", "/...", None).unwrap(), "/b/...");
        assert_eq!(join("/b", "/.a/a./..b", None).unwrap(), "/b/.a/a./..b");
        assert_eq!(
            join("/b", "/caf%C3%A9;v=1", None).unwrap(),
            "/b/caf%C3%A9;v=1"
        );
    }

    #[test]
    fn every_spelling_of_a_dot_segment_is_refused() {
        for rest in [
            "/..",
            "/.",
            "/a/../b",
            "/%2e%2e",
            "/%2E%2E",
            "/.%2e",
            "/%2e.",
            "/%2e",
            "/..%2f",
            "/..%2F..%2Finternal",
            "/a%2f..%2fb",
            "/..%5c",
            "/..%5Cx",
            "/..\\",
            "/a\\b",
            "/%252e%252e",
            "/%25252e%25252e",
            "/..;",
            "/..;jsessionid=1",
            "/.;x",
            "/%2e%2e;x",
            "/%c0%ae%c0%ae",
            "/%e0%80%ae",
            "/%ef%bc%8e%ef%bc%8e",
            "/%e2%80%a5",
            "/..%ef%bc%8f",
            "/%00",
            "/a%0d%0ab",
            "/%zz",
            "/%2",
            "/%2525252e",
        ] {
            assert!(join("/base", rest, None).is_err(), "{rest}");
        }
    }
}
