//! A measurement's labels on their way into its line: the caller's pairs
//! checked against [the rules](zibrato_backend_api::labels), ordered by key
//! and written after the name, on the stack and in the slot, as the line is
//! formatted.
//!
//! What breaks the rules never breaks the line: a label with a bad or
//! reserved key, a key given twice (the first is kept) or a label beyond
//! [`MAX_LABELS`] is dropped; a value with characters the wire cannot carry
//! has them replaced with `_`, and one longer than [`MAX_VALUE_BYTES`] is cut
//! there (at a character boundary). Each is counted ([`LabelCounts`]); an
//! empty value is the label's absence and is skipped without a count.

use std::cmp::Ordering;
#[cfg(doc)]
use zibrato_backend_api::labels::{is_key_byte, is_key_start};
use zibrato_backend_api::labels::{
    is_value_char, MAX_KEY_BYTES, MAX_LABELS, MAX_VALUE_BYTES, RESERVED_KEYS,
};

/// Labels as a caller gives them: `(key, value)` pairs, in any order.
pub(crate) type Pairs<'a> = &'a [(&'a str, &'a str)];

/// How many of a measurement's labels were dropped, and how many repaired,
/// as its line was formatted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LabelCounts {
    pub(crate) dropped: u32,
    pub(crate) repaired: u32,
}

impl LabelCounts {
    /// Whether there is anything to count (almost never).
    #[inline(always)]
    pub(crate) fn any(self) -> bool {
        (self.dropped | self.repaired) != 0
    }
}

/// The labels of `given` that go on the wire, as positions in `given`
/// sorted by key: at most [`MAX_LABELS`], on the stack.
pub(crate) struct Order {
    at: [u16; MAX_LABELS],
    len: usize,
}

impl Order {
    /// Picks and orders the labels to send, counting in `counts` those
    /// dropped. A sorted `given` (what a static slice usually is, and what
    /// the attribute macros pass) costs one key comparison per label.
    ///
    /// Inlined into its caller, so that the positions are not copied (read
    /// back whole just after being written piecewise, which stalls).
    #[inline(always)]
    pub(crate) fn of(given: Pairs, counts: &mut LabelCounts) -> Order {
        let mut order = Order {
            at: [0; MAX_LABELS],
            len: 0,
        };
        for (i, &(key, value)) in given.iter().enumerate() {
            if value.is_empty() {
                continue;
            }
            let Ok(i) = u16::try_from(i) else {
                // Beyond 65 535 labels, which MAX_LABELS ruled out long before.
                counts.dropped += 1;
                continue;
            };
            if !key_is_valid(key) {
                counts.dropped += 1;
                continue;
            }
            // Insertion into the sorted positions, from the end: stable, so a
            // key given twice meets its first occurrence just before it.
            let mut pos = order.len;
            let mut repeated = false;
            while pos > 0 {
                match key_cmp(given[usize::from(order.at[pos - 1])].0, key) {
                    Ordering::Greater => pos -= 1,
                    Ordering::Equal => {
                        repeated = true;
                        break;
                    }
                    Ordering::Less => break,
                }
            }
            if repeated || order.len == MAX_LABELS {
                counts.dropped += 1;
                continue;
            }
            // A move of at most a few positions: by hand, not a call to
            // `memmove`.
            let mut j = order.len;
            while j > pos {
                order.at[j] = order.at[j - 1];
                j -= 1;
            }
            order.at[pos] = i;
            order.len += 1;
        }
        order
    }

    /// The positions, in key order.
    #[inline]
    pub(crate) fn positions(&self) -> &[u16] {
        &self.at[..self.len]
    }
}

/// A byte may start a key ([`is_key_start`]).
const KEY_START: u8 = 1;
/// A byte may be part of a key ([`is_key_byte`]).
const KEY_BYTE: u8 = 2;
/// A byte is an ASCII character a value may hold ([`is_value_char`]).
const VALUE_ASCII: u8 = 4;

/// What each byte may be, by the rules: one load per byte instead of a
/// chain of comparisons, and no early exit, so the scans of the short keys
/// and values of a measurement run straight through. A test pins it to the
/// rules' own functions for every byte.
static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut class = [0u8; 256];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        if b.is_ascii_alphabetic() || b == b'_' {
            class[i] |= KEY_START;
        }
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-' {
            class[i] |= KEY_BYTE;
        }
        if !b.is_ascii_control() && b != b'|' && b != b';' {
            class[i] |= VALUE_ASCII;
        }
        i += 1;
    }
    class
}

/// The classes every byte of `bytes` has.
#[inline(always)]
fn common_class(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(u8::MAX, |common, &b| common & CLASS[usize::from(b)])
}

/// [`check_key`](zibrato_backend_api::labels::check_key)`(key).is_ok()`
/// from the same rules, without its early exits and the calls to `memcmp`
/// that comparing with the reserved keys costs there (a test pins that both
/// agree).
#[inline(always)]
fn key_is_valid(key: &str) -> bool {
    let bytes = key.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    bytes.len() <= MAX_KEY_BYTES
        && CLASS[usize::from(first)] & KEY_START != 0
        && common_class(bytes) & KEY_BYTE != 0
        && !RESERVED_KEYS.iter().any(|reserved| {
            // The first byte rules out most keys before a comparison.
            reserved.as_bytes()[0] == first && crate::short::eq(reserved.as_bytes(), bytes)
        })
}

/// Bytewise order of two valid (so non-empty) keys: most keys of one
/// measurement differ in their first byte, which decides without a call.
#[inline(always)]
fn key_cmp(a: &str, b: &str) -> Ordering {
    match a.as_bytes()[0].cmp(&b.as_bytes()[0]) {
        Ordering::Equal => a.cmp(b),
        decided => decided,
    }
}

/// How many labels of `given` are present (non-empty values): what legacy
/// mode drops.
pub(crate) fn present(given: Pairs) -> u32 {
    let n = given.iter().filter(|(_, value)| !value.is_empty()).count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Whether `value` can be written as it is: ASCII without `|`, `;` or
/// control characters (the common case, one byte scan), or other text of
/// allowed characters, at most [`MAX_VALUE_BYTES`] long.
#[inline]
pub(crate) fn value_is_clean(value: &str) -> bool {
    value.len() <= MAX_VALUE_BYTES && common_class(value.as_bytes()) & VALUE_ASCII != 0
        || value_is_clean_text(value)
}

#[cold]
fn value_is_clean_text(value: &str) -> bool {
    value.len() <= MAX_VALUE_BYTES && value.chars().all(is_value_char)
}

/// `value` as it is sent: cut to at most [`MAX_VALUE_BYTES`] at a character
/// boundary, each character the rules refuse replaced with `_`, by `write`
/// one piece at a time.
#[cold]
#[inline(never)]
pub(crate) fn write_repaired(value: &str, mut write: impl FnMut(&[u8])) {
    let mut end = value.len().min(MAX_VALUE_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let mut clean_from = 0;
    for (i, c) in value[..end].char_indices() {
        if !is_value_char(c) {
            write(&value.as_bytes()[clean_from..i]);
            write(b"_");
            clean_from = i + c.len_utf8();
        }
    }
    write(&value.as_bytes()[clean_from..end]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::labels::{is_key_byte, is_key_start};

    fn sorted<'a>(given: Pairs<'a>) -> (Vec<(&'a str, &'a str)>, LabelCounts) {
        let mut counts = LabelCounts::default();
        let order = Order::of(given, &mut counts);
        let pairs = order
            .positions()
            .iter()
            .map(|&i| given[usize::from(i)])
            .collect();
        (pairs, counts)
    }

    fn repaired(value: &str) -> String {
        let mut out = Vec::new();
        write_repaired(value, |piece| out.extend_from_slice(piece));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn labels_come_out_sorted_by_key_whatever_the_order_given() {
        let given = [("route", "/api"), ("method", "GET"), ("a", "1"), ("Z", "2")];
        let (pairs, counts) = sorted(&given);
        // Bytewise: upper case before lower case.
        assert_eq!(
            pairs,
            [("Z", "2"), ("a", "1"), ("method", "GET"), ("route", "/api")]
        );
        assert_eq!(counts, LabelCounts::default());
    }

    #[test]
    fn bad_reserved_and_repeated_keys_are_dropped_and_counted() {
        let given = [
            ("9lives", "x"),
            ("", "x"),
            ("a b", "x"),
            ("level", "debug"),
            ("source", "web1"),
            ("k", "first"),
            ("k", "second"),
            (&*"k".repeat(65), "x"),
        ];
        let (pairs, counts) = sorted(&given);
        assert_eq!(pairs, [("k", "first")]);
        assert_eq!(counts.dropped, 7);
    }

    #[test]
    fn every_byte_is_classed_as_the_rules_class_it() {
        for b in 0..=255u8 {
            let class = CLASS[usize::from(b)];
            assert_eq!(class & KEY_START != 0, is_key_start(b), "{b}");
            assert_eq!(class & KEY_BYTE != 0, is_key_byte(b), "{b}");
            let value = b.is_ascii() && is_value_char(char::from(b));
            assert_eq!(class & VALUE_ASCII != 0, value, "{b}");
        }
    }

    #[test]
    fn keys_are_judged_as_the_rules_judge_them() {
        use zibrato_backend_api::labels::check_key;
        let long = "k".repeat(MAX_KEY_BYTES);
        let too_long = "k".repeat(MAX_KEY_BYTES + 1);
        for key in [
            "a",
            "_x",
            "http.method",
            "a-b_c.9",
            &long,
            &too_long,
            "",
            "9a",
            ".a",
            "-a",
            "a b",
            "é",
            "a=b",
            "level",
            "source",
            "levels",
            "sourc",
            "Level",
        ] {
            assert_eq!(key_is_valid(key), check_key(key).is_ok(), "{key:?}");
        }
        assert_eq!(key_cmp("b", "ab"), Ordering::Greater);
        assert_eq!(key_cmp("ab", "abc"), Ordering::Less);
        assert_eq!(key_cmp("Z", "a"), Ordering::Less);
        assert_eq!(key_cmp("same", "same"), Ordering::Equal);
    }

    #[test]
    fn empty_values_are_absent_and_not_counted() {
        let (pairs, counts) = sorted(&[("a", ""), ("b", "1"), ("b", "")]);
        assert_eq!(pairs, [("b", "1")]);
        assert_eq!(counts, LabelCounts::default());
    }

    #[test]
    fn labels_beyond_the_limit_are_dropped_in_the_order_given() {
        let keys: Vec<String> = (0..20).rev().map(|i| format!("k{i:02}")).collect();
        let given: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
        let (pairs, counts) = sorted(&given);
        assert_eq!(pairs.len(), MAX_LABELS);
        assert_eq!(counts.dropped, 4);
        // The first sixteen given (k19 down to k04), sorted.
        assert_eq!(pairs[0].0, "k04");
        assert_eq!(pairs[MAX_LABELS - 1].0, "k19");
        // A key given twice does not take a place.
        let mut twice = vec![("k", "1"); 3];
        twice.extend_from_slice(&given[..MAX_LABELS]);
        let (pairs, counts) = sorted(&twice);
        assert_eq!((pairs.len(), counts.dropped), (MAX_LABELS, 3));
    }

    #[test]
    fn values_are_clean_or_repaired() {
        for clean in [
            "GET",
            "/api/users?x=1",
            "é ü 東京",
            &"v".repeat(MAX_VALUE_BYTES),
        ] {
            assert!(value_is_clean(clean), "{clean}");
        }
        for (bad, sent) in [
            ("a|b", "a_b"),
            ("a;b", "a_b"),
            ("line\nbreak\r", "line_break_"),
            ("tab\there", "tab_here"),
            ("\u{7f}del", "_del"),
            ("é\u{85}ü", "é_ü"),
        ] {
            assert!(!value_is_clean(bad), "{bad:?}");
            assert_eq!(repaired(bad), sent);
        }
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        let long = "v".repeat(MAX_VALUE_BYTES + 10);
        assert!(!value_is_clean(&long));
        assert_eq!(repaired(&long), "v".repeat(MAX_VALUE_BYTES));
        // 'é' is two bytes: the one across the limit goes whole.
        let accents = "é".repeat(MAX_VALUE_BYTES);
        let cut = repaired(&accents);
        assert_eq!(cut.len(), MAX_VALUE_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
