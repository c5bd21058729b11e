//! Making names and sources safe for a destination.
//!
//! Each destination allows a different alphabet: the wire forbids `|` and line
//! breaks, Librato allows `[A-Za-z0-9.:_-]` up to 255 characters, statsd
//! forbids `:`, `|`, `@`, `#` and whitespace. [`sanitize`] does the work for
//! all of them and only allocates when something has to change.

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

/// Whether `c` is allowed in a Librato metric name or source.
pub fn is_librato_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '_' | '-')
}

/// A metric name or source made safe for Librato: `[A-Za-z0-9.:_-]`, at most
/// 255 characters.
pub fn librato_name(text: &str) -> Cow<'_, str> {
    sanitize(text, is_librato_char, '_', 255)
}

/// Whether `c` is allowed in a statsd metric name: no `:`, `|`, `@`, `#`,
/// whitespace or control characters.
pub fn is_statsd_char(c: char) -> bool {
    !(matches!(c, ':' | '|' | '@' | '#') || c.is_whitespace() || c.is_control())
}

/// A metric name made safe for statsd.
pub fn statsd_name(text: &str) -> Cow<'_, str> {
    sanitize(text, is_statsd_char, '_', usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(
            librato_name("db.query"),
            Cow::Borrowed("db.query")
        ));
        assert!(matches!(wire_field("a b"), Cow::Borrowed("a b")));
    }

    #[test]
    fn forbidden_characters_are_replaced() {
        assert_eq!(wire_field("a|b\nc\rd"), "a_b_c_d");
        assert_eq!(librato_name("GET /users?id=1"), "GET__users_id_1");
        assert_eq!(statsd_name("a:b|c@d#e f\tg"), "a_b_c_d_e_f_g");
    }

    #[test]
    fn librato_names_are_cut_to_255() {
        let long = "x".repeat(300);
        assert_eq!(librato_name(&long).len(), 255);
        let wide = "é".repeat(300);
        let cut = librato_name(&wide);
        assert!(cut.len() <= 255 && cut.chars().all(|c| c == '_'));
    }

    #[test]
    fn empty_names_become_the_replacement() {
        assert_eq!(wire_field(""), "_");
        assert_eq!(statsd_name(""), "_");
    }
}
