//! Making names and sources safe for a destination.
//!
//! Each destination allows a different alphabet. [`sanitize`] does the work
//! for any of them, given the destination's test of a character, and only
//! allocates when something has to change. The wire's alphabet (anything but
//! `|` and line breaks) lives here, beside the codec that needs it; a
//! backend keeps its destination's alphabet itself, next to the names it
//! builds.

use std::borrow::Cow;

/// Replaces every character `allowed` rejects with `replacement` and cuts the
/// result to at most `max_len` bytes (on a character boundary). An empty input
/// becomes the replacement character, so a name never vanishes.
pub fn sanitize<'a>(
    text: &'a str,
    allowed: impl Fn(char) -> bool,
    replacement: char,
    max_len: usize,
) -> Cow<'a, str> {
    if text.is_empty() {
        return Cow::Owned(replacement.to_string());
    }
    let clean = text.chars().all(&allowed);
    if clean && text.len() <= max_len {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(max_len));
    for c in text.chars() {
        let c = if allowed(c) { c } else { replacement };
        if out.len() + c.len_utf8() > max_len {
            break;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Whether `c` may appear in a wire field: anything but `|` and line breaks.
pub fn is_wire_char(c: char) -> bool {
    !matches!(c, '|' | '\n' | '\r')
}

/// A level, name or source made safe for the wire: `|` and line breaks become `_`.
pub fn wire_field(text: &str) -> Cow<'_, str> {
    sanitize(text, is_wire_char, '_', usize::MAX)
}

/// A name made safe for the wire's name field: as [`wire_field`], and `;`
/// (which starts the labels there) becomes `_` too.
pub fn wire_name(text: &str) -> Cow<'_, str> {
    sanitize(
        text,
        |c| is_wire_char(c) && c != crate::labels::SEPARATOR,
        '_',
        usize::MAX,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(wire_field("a b"), Cow::Borrowed("a b")));
    }

    #[test]
    fn forbidden_characters_are_replaced() {
        assert_eq!(wire_field("a|b\nc\rd"), "a_b_c_d");
        assert_eq!(wire_field("a;b"), "a;b");
        assert_eq!(wire_name("a;b|c"), "a_b_c");
    }

    #[test]
    fn empty_names_become_the_replacement() {
        assert_eq!(wire_field(""), "_");
    }
}
