//! Labels: the key–value pairs that, with level, source and name, make up a
//! measurement's series.
//!
//! They travel in the name field, each after a `;`, in the syntax Graphite
//! 1.1 and Etsy statsd use for tagged series:
//!
//! ```text
//! info|Counter|http.requests;method=GET;route=/api/users|1|1764057600|web1
//! ```
//!
//! The rules, which clients apply when they write and workers when they read:
//!
//! - a key is ASCII letters, digits, `_`, `.` and `-`, starts with a letter or
//!   `_`, and is at most [`MAX_KEY_BYTES`] long;
//! - a value is any UTF-8 text without `|`, `;`, line breaks or control
//!   characters (see [`is_value_char`]), at most [`MAX_VALUE_BYTES`] long; an
//!   empty value means the label is absent;
//! - at most [`MAX_LABELS`] labels, no key twice, and neither `level` nor
//!   `source` ([`RESERVED_KEYS`]: they are the measurement's own fields);
//! - clients send labels sorted by key (bytewise); workers accept any order,
//!   and the same labels in another order are the same series.
//!
//! [`Labels::parse`] checks a label text without allocating: a [`Labels`]
//! borrows the text and remembers how many labels it holds and whether they
//! came sorted.
//!
//! ```
//! use zibrato_backend_api::labels::{LabelError, Labels};
//!
//! let labels = Labels::parse("route=/api;method=GET")?;
//! assert_eq!(labels.len(), 2);
//! let pairs: Vec<_> = labels.sorted().iter().collect();
//! assert_eq!(pairs, [("method", "GET"), ("route", "/api")]);
//! assert_eq!(labels.canonical(), "method=GET;route=/api");
//! assert_eq!(labels, Labels::parse("method=GET;route=/api")?);
//!
//! assert_eq!(Labels::parse("level=debug"), Err(LabelError::Reserved));
//! # Ok::<(), LabelError>(())
//! ```

use std::fmt;
use std::hash::{Hash, Hasher};

/// The most labels one measurement may carry.
pub const MAX_LABELS: usize = 16;

/// The longest label key, in bytes.
pub const MAX_KEY_BYTES: usize = 64;

/// The longest label value, in bytes.
pub const MAX_VALUE_BYTES: usize = 255;

/// Keys no label may have: they name the measurement's own fields.
pub const RESERVED_KEYS: [&str; 2] = ["level", "source"];

/// What separates the name from the first label, and one label from the next.
pub const SEPARATOR: char = ';';

/// Why a label text breaks the rules. Each message is one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelError {
    /// More than [`MAX_LABELS`] labels.
    #[error("more than {MAX_LABELS} labels")]
    TooMany,
    /// A label without `=` between its key and value.
    #[error("a label without '=' between key and value")]
    NoEquals,
    /// An empty key.
    #[error("a label with an empty key")]
    EmptyKey,
    /// A key longer than [`MAX_KEY_BYTES`].
    #[error("a label key longer than {MAX_KEY_BYTES} bytes")]
    KeyTooLong,
    /// A key with a character other than ASCII letters, digits, `_`, `.`
    /// and `-`, or not starting with a letter or `_`.
    #[error("a label key with a character other than letters, digits, '_', '.', '-', or not starting with a letter or '_'")]
    BadKey,
    /// A value longer than [`MAX_VALUE_BYTES`].
    #[error("a label value longer than {MAX_VALUE_BYTES} bytes")]
    ValueTooLong,
    /// A value with `|`, `;`, a line break or another control character.
    #[error("a label value with '|', ';' or a control character")]
    BadValue,
    /// A key of [`RESERVED_KEYS`].
    #[error("a label named 'level' or 'source' (reserved)")]
    Reserved,
    /// The same key twice.
    #[error("the same label key twice")]
    DuplicateKey,
}

/// Whether `b` may start a key: an ASCII letter or `_`.
#[inline]
pub fn is_key_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// Whether `b` may appear in a key: an ASCII letter, digit, `_`, `.` or `-`.
#[inline]
pub fn is_key_byte(b: u8) -> bool {
    KEY_BYTES[usize::from(b)]
}

/// [`is_key_byte`] as a table: one load per byte on the parse path.
static KEY_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-';
        b += 1;
    }
    table
};

/// Whether `c` may appear in a value: anything but `|`, `;` and control
/// characters (line breaks among them).
#[inline]
pub fn is_value_char(c: char) -> bool {
    !matches!(c, '|' | ';') && !c.is_control()
}

/// Checks one key against the rules (reserved keys included).
pub fn check_key(key: &str) -> Result<(), LabelError> {
    let bytes = key.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(LabelError::EmptyKey);
    };
    if bytes.len() > MAX_KEY_BYTES {
        return Err(LabelError::KeyTooLong);
    }
    if !is_key_start(first) || !bytes.iter().all(|&b| is_key_byte(b)) {
        return Err(LabelError::BadKey);
    }
    if RESERVED_KEYS.contains(&key) {
        return Err(LabelError::Reserved);
    }
    Ok(())
}

/// Checks one value against the rules (an empty value is allowed: it means
/// the label is absent).
pub fn check_value(value: &str) -> Result<(), LabelError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(LabelError::ValueTooLong);
    }
    // ASCII is the common case: a byte scan, no decoding.
    let clean = if value.is_ascii() {
        value
            .bytes()
            .all(|b| b != b'|' && b != b';' && !b.is_ascii_control())
    } else {
        value.chars().all(is_value_char)
    };
    if clean {
        Ok(())
    } else {
        Err(LabelError::BadValue)
    }
}

/// The labels of one measurement: a checked label text (`k=v;k=v`, as it
/// follows the name's first `;` on the wire), borrowed.
///
/// Two `Labels` are equal, and hash alike, when they hold the same present
/// labels in any order; labels with an empty value are absent.
#[derive(Clone, Copy)]
pub struct Labels<'a> {
    text: &'a str,
    len: u8,
    sorted: bool,
    /// Whether `text` is the canonical text itself (sorted, no empty
    /// values), so that hashing and comparing can use it as it is.
    canonical: bool,
}

/// The longest canonical label text: [`MAX_LABELS`] labels of the longest
/// key and value, with their `=` and the `;` between them.
pub const MAX_CANONICAL_BYTES: usize = MAX_LABELS * (MAX_KEY_BYTES + 1 + MAX_VALUE_BYTES + 1) - 1;

impl<'a> Labels<'a> {
    /// No labels.
    pub const NONE: Labels<'static> = Labels {
        text: "",
        len: 0,
        sorted: true,
        canonical: true,
    };

    /// Labels over `text` that is known to be canonical: written by
    /// [`Labels::write_canonical`] from checked labels. Nothing is checked.
    pub(crate) fn from_canonical(text: &'a str) -> Labels<'a> {
        let len = if text.is_empty() {
            0
        } else {
            1 + text.bytes().filter(|&b| b == b';').count()
        };
        debug_assert!(len <= MAX_LABELS);
        Labels {
            text,
            len: len as u8,
            sorted: true,
            canonical: true,
        }
    }

    /// Checks `text` (`key=value` pairs separated by `;`; empty for none)
    /// against the rules, without allocating.
    pub fn parse(text: &'a str) -> Result<Labels<'a>, LabelError> {
        if text.is_empty() {
            return Ok(Labels::NONE);
        }
        // One pass over the bytes, as the codec finds its fields: each key up
        // to its `=`, checked as it is scanned, then its value up to the
        // next `;`. The text is UTF-8 (a `&str`), so a byte scan is exact:
        // the only control characters beyond ASCII are U+0080..=U+009F,
        // encoded as 0xC2 0x80..=0x9F.
        let bytes = text.as_bytes();
        let mut keys: [&str; MAX_LABELS] = [""; MAX_LABELS];
        let mut len = 0usize;
        let mut sorted = true;
        let mut absent = false;
        let mut at = 0;
        loop {
            let key_start = at;
            let mut bad_key = false;
            loop {
                match bytes.get(at) {
                    None | Some(b';') => return Err(LabelError::NoEquals),
                    Some(b'=') => break,
                    Some(&b) => {
                        bad_key |= !is_key_byte(b);
                        at += 1;
                    }
                }
            }
            let key = &text[key_start..at];
            match key.as_bytes().first() {
                None => return Err(LabelError::EmptyKey),
                Some(_) if key.len() > MAX_KEY_BYTES => return Err(LabelError::KeyTooLong),
                Some(&first) if bad_key || !is_key_start(first) => return Err(LabelError::BadKey),
                Some(b'l' | b's') if RESERVED_KEYS.contains(&key) => {
                    return Err(LabelError::Reserved)
                }
                Some(_) => {}
            }
            at += 1;
            let value_start = at;
            let mut bad_value = false;
            while let Some(&b) = bytes.get(at) {
                if b == b';' {
                    break;
                }
                bad_value |= b == b'|'
                    || b < 0x20
                    || b == 0x7f
                    || (b == 0xc2 && matches!(bytes.get(at + 1), Some(0x80..=0x9f)));
                at += 1;
            }
            if at - value_start > MAX_VALUE_BYTES {
                return Err(LabelError::ValueTooLong);
            }
            if bad_value {
                return Err(LabelError::BadValue);
            }
            if at == value_start {
                absent = true;
            } else {
                if len == MAX_LABELS {
                    return Err(LabelError::TooMany);
                }
                if len > 0 {
                    let previous = keys[len - 1];
                    // While keys come sorted, a greater one cannot repeat an
                    // earlier one: the search is needed only otherwise.
                    if (key <= previous || !sorted) && keys[..len].contains(&key) {
                        return Err(LabelError::DuplicateKey);
                    }
                    sorted &= key > previous;
                }
                keys[len] = key;
                len += 1;
            }
            if at == bytes.len() {
                break;
            }
            // Past the `;`: a text ending in one has an empty last label,
            // refused as one without `=`.
            at += 1;
        }
        Ok(Labels {
            text,
            // At most MAX_LABELS, which fits.
            len: len as u8,
            sorted,
            canonical: sorted && !absent,
        })
    }

    /// The label text as it came, empty-valued labels included.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// How many labels are present.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the present labels came sorted by key (as clients send them).
    pub fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// The present labels, in the order they came.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let text = self.text;
        text.split(SEPARATOR)
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| pair.split_once('='))
            .filter(|(_, value)| !value.is_empty())
    }

    /// The present labels sorted by key, on the stack.
    pub fn sorted(&self) -> SortedLabels<'a> {
        let mut pairs: [(&'a str, &'a str); MAX_LABELS] = [("", ""); MAX_LABELS];
        let mut len = 0;
        for pair in self.iter().take(MAX_LABELS) {
            pairs[len] = pair;
            len += 1;
        }
        if !self.sorted {
            pairs[..len].sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        SortedLabels { pairs, len }
    }

    /// The canonical text: present labels sorted by key, `k=v;k=v`.
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(self.text.len());
        self.write_canonical(&mut out);
        out
    }

    /// Appends the canonical text to `out`.
    pub fn write_canonical(&self, out: &mut String) {
        if self.canonical {
            out.push_str(self.text);
            return;
        }
        for (i, (key, value)) in self.sorted().iter().enumerate() {
            if i > 0 {
                out.push(SEPARATOR);
            }
            out.push_str(key);
            out.push('=');
            out.push_str(value);
        }
    }

    /// The canonical text, borrowed when the labels came canonical (sorted,
    /// no empty values: what clients send), else written into `buffer`.
    fn canonical_in<'b>(&self, buffer: &'b mut [u8; MAX_CANONICAL_BYTES]) -> &'b [u8]
    where
        'a: 'b,
    {
        if self.canonical {
            return self.text.as_bytes();
        }
        let mut at = 0;
        for (i, (key, value)) in self.sorted().iter().enumerate() {
            let parts: [&[u8]; 4] = [
                if i > 0 { b";" } else { b"" },
                key.as_bytes(),
                b"=",
                value.as_bytes(),
            ];
            for part in parts {
                buffer[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
        }
        &buffer[..at]
    }
}

impl Default for Labels<'_> {
    fn default() -> Self {
        Labels::NONE
    }
}

impl PartialEq for Labels<'_> {
    fn eq(&self, other: &Labels<'_>) -> bool {
        if self.len != other.len {
            return false;
        }
        if self.len == 0 {
            return true;
        }
        if self.text == other.text {
            return true;
        }
        if self.canonical && other.canonical {
            // One canonical text per set of labels: different texts, different sets.
            return false;
        }
        let (a, b) = (self.sorted(), other.sorted());
        a.iter().eq(b.iter())
    }
}

impl Eq for Labels<'_> {}

impl Labels<'_> {
    /// Whether these are the labels of `canonical`, a canonical text (as
    /// [`Labels::from_canonical`] takes): a text comparison when these came
    /// canonical too.
    #[inline]
    pub(crate) fn eq_canonical(&self, canonical: &str) -> bool {
        if self.canonical {
            // No labels, the common case, without a call to `memcmp`.
            self.text.len() == canonical.len() && (canonical.is_empty() || self.text == canonical)
        } else {
            *self == Labels::from_canonical(canonical)
        }
    }
}

impl Hash for Labels<'_> {
    /// Hashes the canonical text, so that any order of the same labels
    /// hashes alike. Labels that came canonical (what clients send, and what
    /// a stored series holds) hash their text as it is, without sorting.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // No labels, the common case, hash as nothing at all.
        if self.len == 0 {
            return;
        }
        state.write_u8(self.len);
        if self.canonical {
            state.write(self.text.as_bytes());
        } else {
            let mut buffer = [0u8; MAX_CANONICAL_BYTES];
            state.write(self.canonical_in(&mut buffer));
        }
    }
}

impl fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.sorted().iter()).finish()
    }
}

impl fmt::Display for Labels<'_> {
    /// The canonical text (`k=v;k=v`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.sorted().iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{key}={value}")?;
        }
        Ok(())
    }
}

/// Labels sorted by key, held on the stack (see [`Labels::sorted`]).
#[derive(Clone, Copy)]
pub struct SortedLabels<'a> {
    pairs: [(&'a str, &'a str); MAX_LABELS],
    len: usize,
}

impl<'a> SortedLabels<'a> {
    /// The labels, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.pairs[..self.len].iter().copied()
    }

    /// The labels as a slice of `(key, value)`.
    pub fn as_slice(&self) -> &[(&'a str, &'a str)] {
        &self.pairs[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(labels: &Labels) -> u64 {
        foldhash::fast::FixedState::with_seed(1).hash_one(labels)
    }

    #[test]
    fn the_same_labels_in_another_order_are_equal_and_hash_alike() {
        let a = Labels::parse("method=GET;route=/api;status=200").unwrap();
        let b = Labels::parse("status=200;method=GET;route=/api").unwrap();
        assert!(a.is_sorted());
        assert!(!b.is_sorted());
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
        assert_eq!(b.canonical(), "method=GET;route=/api;status=200");
        assert_eq!(b.to_string(), b.canonical());
    }

    #[test]
    fn different_labels_differ() {
        let a = Labels::parse("method=GET").unwrap();
        for other in ["method=PUT", "methods=GET", "method=GET;route=/", ""] {
            let b = Labels::parse(other).unwrap();
            assert_ne!(a, b, "{other}");
        }
        // A value may hold '=': the key ends at the first.
        let c = Labels::parse("q=a=b").unwrap();
        assert_eq!(c.iter().collect::<Vec<_>>(), [("q", "a=b")]);
        assert_ne!(c, Labels::parse("q=a").unwrap());
    }

    #[test]
    fn an_empty_value_means_the_label_is_absent() {
        let a = Labels::parse("route=;method=GET").unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a, Labels::parse("method=GET").unwrap());
        assert_eq!(a.canonical(), "method=GET");
        assert!(!a.is_empty());
        let none = Labels::parse("route=").unwrap();
        assert!(none.is_empty());
        assert_eq!(none, Labels::NONE);
        assert_eq!(hash(&none), hash(&Labels::NONE));
    }

    #[test]
    fn keys_follow_the_rules() {
        for good in [
            "a",
            "_x",
            "http.method",
            "a-b_c.9",
            &"k".repeat(MAX_KEY_BYTES),
        ] {
            assert_eq!(check_key(good), Ok(()), "{good}");
        }
        assert_eq!(check_key(""), Err(LabelError::EmptyKey));
        assert_eq!(
            check_key(&"k".repeat(MAX_KEY_BYTES + 1)),
            Err(LabelError::KeyTooLong)
        );
        for bad in ["9a", ".a", "-a", "a b", "a/b", "é", "a|b"] {
            assert_eq!(check_key(bad), Err(LabelError::BadKey), "{bad}");
        }
        for reserved in RESERVED_KEYS {
            assert_eq!(check_key(reserved), Err(LabelError::Reserved));
        }
        assert_eq!(check_key("levels"), Ok(()));
    }

    #[test]
    fn values_follow_the_rules() {
        for good in [
            "",
            "/api/users",
            "a=b",
            "é ü 東京",
            &"v".repeat(MAX_VALUE_BYTES),
        ] {
            assert_eq!(check_value(good), Ok(()), "{good}");
        }
        assert_eq!(
            check_value(&"v".repeat(MAX_VALUE_BYTES + 1)),
            Err(LabelError::ValueTooLong)
        );
        for bad in ["a|b", "a;b", "a\nb", "a\rb", "a\tb", "\u{7f}", "é\u{85}"] {
            assert_eq!(check_value(bad), Err(LabelError::BadValue), "{bad:?}");
        }
    }

    #[test]
    fn label_texts_that_break_the_rules_are_refused_by_reason() {
        let sixteen: Vec<String> = (0..MAX_LABELS).map(|i| format!("k{i:02}=v")).collect();
        assert_eq!(Labels::parse(&sixteen.join(";")).unwrap().len(), MAX_LABELS);
        let seventeen = format!("{};k99=v", sixteen.join(";"));
        assert_eq!(Labels::parse(&seventeen), Err(LabelError::TooMany));
        // Empty values do not count towards the limit.
        let with_empty = format!("{};k99=", sixteen.join(";"));
        assert_eq!(Labels::parse(&with_empty).unwrap().len(), MAX_LABELS);
        assert_eq!(Labels::parse("a=1;a=2"), Err(LabelError::DuplicateKey));
        assert_eq!(Labels::parse("b=1;a=2;b=3"), Err(LabelError::DuplicateKey));
        assert_eq!(Labels::parse("a=1;b=2;a=3"), Err(LabelError::DuplicateKey));
        assert_eq!(
            Labels::parse("c=1;a=2;b=3;a=4"),
            Err(LabelError::DuplicateKey)
        );
        assert_eq!(Labels::parse("novalue"), Err(LabelError::NoEquals));
        assert_eq!(Labels::parse("a=1;;b=2"), Err(LabelError::NoEquals));
        assert_eq!(Labels::parse("=v"), Err(LabelError::EmptyKey));
        assert_eq!(Labels::parse("source=web1"), Err(LabelError::Reserved));
        assert_eq!(Labels::parse("a=x\ty"), Err(LabelError::BadValue));
    }

    #[test]
    fn canonical_and_general_paths_hash_and_compare_alike() {
        let canonical = Labels::parse("a=1;b=2;c=3").unwrap();
        for other in ["c=3;a=1;b=2", "a=1;x=;b=2;c=3", "b=2;a=1;c=3;z="] {
            let labels = Labels::parse(other).unwrap();
            assert_eq!(labels, canonical, "{other}");
            assert_eq!(hash(&labels), hash(&canonical), "{other}");
            assert_eq!(labels.canonical(), canonical.as_str(), "{other}");
        }
        let stored = Labels::from_canonical("a=1;b=2;c=3");
        assert_eq!(stored.len(), 3);
        assert_eq!(stored, canonical);
        assert_eq!(hash(&stored), hash(&canonical));
        assert!(canonical.eq_canonical("a=1;b=2;c=3"));
        assert!(Labels::parse("c=3;b=2;a=1")
            .unwrap()
            .eq_canonical("a=1;b=2;c=3"));
        assert!(!Labels::parse("c=3;b=2")
            .unwrap()
            .eq_canonical("a=1;b=2;c=3"));
        assert!(!canonical.eq_canonical("a=1;b=2;c=4"));
        assert_eq!(Labels::from_canonical(""), Labels::NONE);
        assert_eq!(hash(&Labels::from_canonical("")), hash(&Labels::NONE));
        // Two canonical texts that differ are different labels.
        assert_ne!(
            Labels::parse("a=1;b=2").unwrap(),
            Labels::parse("a=1;b=3").unwrap()
        );
    }

    #[test]
    fn the_longest_label_text_fits_the_canonical_buffer() {
        let pairs: Vec<String> = (0..MAX_LABELS)
            .rev()
            .map(|i| {
                format!(
                    "{}={}",
                    format!("k{i:02}").repeat(MAX_KEY_BYTES / 3) + "k",
                    "v".repeat(MAX_VALUE_BYTES)
                )
            })
            .collect();
        let text = pairs.join(";");
        let labels = Labels::parse(&text).unwrap();
        assert!(!labels.is_sorted());
        let mut sorted = pairs.clone();
        sorted.sort();
        let sorted = sorted.join(";");
        assert!(sorted.len() <= MAX_CANONICAL_BYTES);
        assert_eq!(hash(&labels), hash(&Labels::parse(&sorted).unwrap()));
    }

    #[test]
    fn sorted_labels_come_in_key_order() {
        let labels = Labels::parse("z=1;a=2;m=3").unwrap();
        assert_eq!(
            labels.sorted().as_slice(),
            [("a", "2"), ("m", "3"), ("z", "1")]
        );
        assert_eq!(format!("{labels:?}"), r#"{"a": "2", "m": "3", "z": "1"}"#);
    }

    #[test]
    fn the_longest_canonical_text_is_max_canonical_bytes_long() {
        let value = "v".repeat(MAX_VALUE_BYTES);
        let text: Vec<String> = (0..MAX_LABELS)
            .map(|i| format!("{}{i:02}={value}", "k".repeat(MAX_KEY_BYTES - 2)))
            .collect();
        let text = text.join(";");
        let labels = Labels::parse(&text).unwrap();
        assert_eq!(labels.canonical().len(), MAX_CANONICAL_BYTES);
    }

    #[test]
    fn the_length_limits_hold_in_a_label_text() {
        let key = "k".repeat(MAX_KEY_BYTES);
        let value = "v".repeat(MAX_VALUE_BYTES);
        assert_eq!(Labels::parse(&format!("{key}={value}")).unwrap().len(), 1);
        assert_eq!(
            Labels::parse(&format!("{key}k=v")),
            Err(LabelError::KeyTooLong)
        );
        assert_eq!(
            Labels::parse(&format!("a=1;b={value}v")),
            Err(LabelError::ValueTooLong)
        );
        assert_eq!(Labels::parse("a=\u{85}"), Err(LabelError::BadValue));
        for bad in ["a b=1", "a/b=1", "ab|=1", "aé=1"] {
            assert_eq!(Labels::parse(bad), Err(LabelError::BadKey), "{bad}");
        }
        assert_eq!(Labels::parse("a=\u{a0}").unwrap().len(), 1);
    }

    /// The rules applied the plain way, pair by pair: what the one-pass
    /// parser must agree with, error for error.
    fn reference(text: &str) -> Result<usize, LabelError> {
        if text.is_empty() {
            return Ok(0);
        }
        let mut keys: Vec<&str> = Vec::new();
        for pair in text.split(SEPARATOR) {
            let (key, value) = pair.split_once('=').ok_or(LabelError::NoEquals)?;
            check_key(key)?;
            check_value(value)?;
            if value.is_empty() {
                continue;
            }
            if keys.len() == MAX_LABELS {
                return Err(LabelError::TooMany);
            }
            if keys.contains(&key) {
                return Err(LabelError::DuplicateKey);
            }
            keys.push(key);
        }
        Ok(keys.len())
    }

    proptest::proptest! {
        #[test]
        fn the_one_pass_parser_follows_the_rules_error_for_error(
            text in "([a-ds_.9/ -]{0,3}(=[a-c=|é\u{85}\t ]{0,3})?;?){0,20}|(level|source|l|sourc)=v",
        ) {
            let parsed = Labels::parse(&text).map(|l| l.len());
            proptest::prop_assert_eq!(parsed, reference(&text), "{:?}", text);
        }
    }
}
