//! Properties of the wire codec over generated input.

use proptest::prelude::*;
use zibrato_backend_api::codec::{encode, parse_frame, parse_line};
use zibrato_backend_api::testing::measurement;
use zibrato_backend_api::Kind;

/// Text a field may carry: anything but `|` and line breaks, not empty.
fn field() -> impl Strategy<Value = String> {
    "[^|\r\n]{1,40}"
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Counter), Just(Kind::Gauge), Just(Kind::Timer)]
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
        name in field(),
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
