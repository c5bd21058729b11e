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

use zibrato_backend_api::labels::{check_key, is_value_char, MAX_LABELS, MAX_VALUE_BYTES};

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
    #[inline]
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
            if check_key(key).is_err() {
                counts.dropped += 1;
                continue;
            }
            // Insertion into the sorted positions, from the end: stable, so a
            // key given twice meets its first occurrence just before it.
            let held = &mut order.at[..order.len];
            let mut pos = held.len();
            while pos > 0 && given[usize::from(held[pos - 1])].0 > key {
                pos -= 1;
            }
            if (pos > 0 && given[usize::from(held[pos - 1])].0 == key) || order.len == MAX_LABELS {
                counts.dropped += 1;
                continue;
            }
            order.at.copy_within(pos..order.len, pos + 1);
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
    value.len() <= MAX_VALUE_BYTES
        && value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'|' && b != b';')
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
