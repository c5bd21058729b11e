//! Properties of the wire codec over generated input.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use zibrato_backend_api::codec::{encode, parse_frame, parse_line, ParseError};
use zibrato_backend_api::labels::{
    check_key, check_value, LabelError, Labels, MAX_KEY_BYTES, MAX_LABELS, MAX_VALUE_BYTES,
    RESERVED_KEYS,
};
use zibrato_backend_api::testing::measurement;
use zibrato_backend_api::Kind;

/// Text a field may carry: anything but `|` and line breaks, not empty.
fn field() -> impl Strategy<Value = String> {
    "[^|\r\n]{1,40}"
}

/// Text a name may carry: a field without `;`, which starts the labels.
fn name() -> impl Strategy<Value = String> {
    "[^|\r\n;]{1,40}"
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Counter),
        Just(Kind::Gauge),
        Just(Kind::Timer),
        Just(Kind::Histogram)
    ]
}

/// A label key: any the rules allow, reserved ones aside.
fn label_key() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_.-]{0,20}"
        .prop_filter("not reserved", |k| !RESERVED_KEYS.contains(&k.as_str()))
}

/// A present label value: any text without `|`, `;` or control characters.
fn label_value() -> impl Strategy<Value = String> {
    "[^|;\\p{Cc}]{1,30}"
}

/// A valid set of labels, in a random order.
fn label_set() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map(label_key(), label_value(), 0..=MAX_LABELS)
        .prop_map(|set| set.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
}

fn label_text(pairs: &[(String, String)]) -> String {
    let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(";")
}

fn hash_of(labels: &Labels<'_>) -> u64 {
    let mut hasher = DefaultHasher::new();
    labels.hash(&mut hasher);
    hasher.finish()
}

/// A label text breaking one rule, in any place among valid labels, with the
/// error it must give.
fn bad_label_text() -> impl Strategy<Value = (String, LabelError)> {
    // Valid labels keyed `a…`, the breaking one `z…`: no accidental duplicates,
    // and few enough that adding two stays within the limit.
    let good = proptest::collection::btree_map(label_key(), label_value(), 0..=8);
    (good, 0..8usize, label_key(), label_value())
        .prop_flat_map(|(good, rule, key, value)| {
            let mut pairs: Vec<String> = good.iter().map(|(k, v)| format!("a{k}={v}")).collect();
            let key = format!("z{key}");
            let error = match rule {
                0 => {
                    pairs.push(format!("{}={value}", RESERVED_KEYS[good.len() % 2]));
                    LabelError::Reserved
                }
                1 => {
                    pairs.push(format!("{key}={value}"));
                    pairs.push(format!("{key}=other"));
                    LabelError::DuplicateKey
                }
                2 => {
                    pairs.push(format!("9{key}={value}"));
                    LabelError::BadKey
                }
                3 => {
                    pairs.push(format!("{key}={value}\u{7}"));
                    LabelError::BadValue
                }
                4 => {
                    pairs.push(format!("{}={value}", "k".repeat(MAX_KEY_BYTES + 1)));
                    LabelError::KeyTooLong
                }
                5 => {
                    pairs.push(format!("{key}={}", "v".repeat(MAX_VALUE_BYTES + 1)));
                    LabelError::ValueTooLong
                }
                6 => {
                    pairs = (0..=MAX_LABELS).map(|i| format!("k{i}={value}")).collect();
                    LabelError::TooMany
                }
                _ => {
                    pairs.push(key);
                    LabelError::NoEquals
                }
            };
            (Just(pairs).prop_shuffle(), Just(error))
        })
        .prop_map(|(pairs, error)| (pairs.join(";"), error))
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        (0.0..10.0f64),
    ]
}

fn source() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(field().prop_filter("not the 'none' marker", |s| s != "not_specified"))
}

prop_compose! {
    fn owned_measurement()(
        level in field(),
        kind in kind(),
        name in name(),
        value in value(),
        timestamp in 0..=zibrato_backend_api::codec::MAX_TIMESTAMP,
        source in source(),
    ) -> (String, Kind, String, f64, i64, Option<String>) {
        (level, kind, name, value, timestamp, source)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_valid_measurement_survives_encode_then_parse(
        (level, kind, name, value, timestamp, source) in owned_measurement()
    ) {
        let m = measurement(&level, kind, &name, value).with_timestamp(timestamp).with_source(source.as_deref());
        let mut wire = Vec::new();
        encode(&mut wire, &m);
        let text = std::str::from_utf8(&wire).unwrap();
        prop_assert_eq!(parse_line(text), Ok(m));
    }

    #[test]
    fn batched_frames_of_one_level_survive(
        level in field(),
        rest in proptest::collection::vec(owned_measurement(), 1..20)
    ) {
        let mut wire = Vec::new();
        for (_, kind, name, value, timestamp, source) in &rest {
            if !wire.is_empty() { wire.push(b'\n'); }
            encode(&mut wire, &measurement(&level, *kind, name, *value).with_timestamp(*timestamp).with_source(source.as_deref()));
        }
        let parsed: Vec<_> = parse_frame(&wire).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(parsed.len(), rest.len());
        for (m, (_, kind, name, value, _, _)) in parsed.iter().zip(&rest) {
            prop_assert_eq!(m.level, level.as_str());
            prop_assert_eq!(m.kind, *kind);
            prop_assert_eq!(m.name, name.as_str());
            prop_assert_eq!(m.value, *value);
        }
    }

    #[test]
    fn measurements_with_labels_survive_encode_then_parse(
        (level, kind, name, value, timestamp, source) in owned_measurement(),
        labels in label_set(),
    ) {
        let text = label_text(&labels);
        let m = measurement(&level, kind, &name, value)
            .with_timestamp(timestamp)
            .with_source(source.as_deref())
            .with_labels(&text);
        let mut wire = Vec::new();
        encode(&mut wire, &m);
        let line = std::str::from_utf8(&wire).unwrap();
        let parsed = parse_line(line).unwrap();
        prop_assert_eq!(parsed, m);
        prop_assert_eq!(parsed.name, name.as_str());
        // Encoded sorted: the labels read back in their canonical text.
        let sorted: BTreeMap<_, _> = labels.iter().cloned().collect();
        let sorted: Vec<_> = sorted.into_iter().collect();
        prop_assert_eq!(parsed.labels.as_str(), label_text(&sorted));
        prop_assert!(parsed.labels.is_sorted());
        prop_assert_eq!(parsed.labels.len(), labels.len());
    }

    #[test]
    fn a_shuffled_label_order_parses_to_equal_labels(
        labels in label_set(),
        shuffled in Just(()).prop_perturb(|_, mut rng| rng.next_u64()),
    ) {
        let mut other = labels.clone();
        // A rotation by a random amount, and a reversal for odd seeds.
        if !other.is_empty() {
            let by = (shuffled as usize) % other.len();
            other.rotate_left(by);
        }
        if shuffled % 2 == 1 {
            other.reverse();
        }
        let (a, b) = (label_text(&labels), label_text(&other));
        let line_a = format!("info|Counter|n;{a}|1|0|s");
        let line_b = format!("info|Counter|n;{b}|1|0|s");
        prop_assume!(!labels.is_empty());
        let (ma, mb) = (parse_line(&line_a).unwrap(), parse_line(&line_b).unwrap());
        prop_assert_eq!(ma.labels, mb.labels);
        prop_assert_eq!(hash_of(&ma.labels), hash_of(&mb.labels));
        prop_assert_eq!(ma.labels.canonical(), mb.labels.canonical());
        prop_assert_eq!(ma, mb);
    }

    #[test]
    fn invalid_label_texts_give_the_typed_error((text, error) in bad_label_text()) {
        let line = format!("info|Counter|n;{text}|1|0|s");
        prop_assert_eq!(parse_line(&line), Err(ParseError::BadLabels(error)));
        // The same line's neighbours in a frame still parse.
        let frame = format!("info|Counter|a|1|0|s\n{line}\ninfo|Counter|b;k=v|1|0|s");
        let got: Vec<_> = parse_frame(frame.as_bytes()).collect();
        prop_assert_eq!(got.len(), 3);
        prop_assert!(got[0].is_ok() && got[2].is_ok());
        prop_assert_eq!(&got[1], &Err(ParseError::BadLabels(error)));
    }

    #[test]
    fn arbitrary_bytes_in_the_name_field_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200)
    ) {
        let mut frame = b"info|Counter|".to_vec();
        frame.extend_from_slice(&bytes);
        frame.extend_from_slice(b"|1|0|s");
        for m in parse_frame(&frame).flatten() {
            prop_assert!(!m.name.is_empty() && !m.name.contains(';'));
            for (key, value) in m.labels.iter() {
                prop_assert_eq!(check_key(key), Ok(()));
                prop_assert_eq!(check_value(value), Ok(()));
            }
            let canonical = m.labels.canonical();
            prop_assert_eq!(Labels::parse(&canonical), Ok(m.labels));
        }
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let results: Vec<_> = parse_frame(&bytes).collect();
        for m in results.iter().flatten() {
            prop_assert!(!m.level.is_empty() && !m.name.is_empty() && m.value.is_finite());
        }
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn parse_rejects_lines_without_six_fields(parts in proptest::collection::vec("[^|\r\n]{0,8}", 0..12)) {
        prop_assume!(parts.len() != 6);
        let line = parts.join("|");
        prop_assert!(parse_line(&line).is_err());
    }

    #[test]
    fn encoding_never_produces_a_broken_message(
        level in ".{0,20}", name in ".{0,20}", source in proptest::option::of(".{0,20}"),
        kind in kind(), value in any::<f64>(), timestamp in any::<i64>()
    ) {
        let m = measurement(&level, kind, &name, value).with_timestamp(timestamp).with_source(source.as_deref());
        let mut wire = Vec::new();
        encode(&mut wire, &m);
        prop_assert!(!wire.contains(&b'\n'));
        let text = std::str::from_utf8(&wire).unwrap();
        prop_assert!(parse_line(text).is_ok(), "{:?}", text);
    }
}
