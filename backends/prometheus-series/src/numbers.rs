//! Numbers as Prometheus' exposition formats write them, for the page and
//! for label values (`le`, `quantile`) that must read the same on the page
//! and in remote write.

/// Integers below 2^53 as integers, infinities as `+Inf` and `-Inf`, any
/// other value as its shortest round-tripping decimal.
pub fn write_number(out: &mut Vec<u8>, buffer: &mut ryu::Buffer, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        write_integer(out, v as i64);
    } else {
        out.extend_from_slice(buffer.format_finite(v).as_bytes());
    }
}

/// `v` in decimal digits, `-` before a negative one.
pub fn write_integer(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    let mut n = v.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// OpenMetrics' canonical form of `le` and `quantile` values: a float that
/// always has a decimal point or exponent (`1.0`, `0.005`, `+Inf`).
pub fn write_canonical(out: &mut Vec<u8>, buffer: &mut ryu::Buffer, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(buffer.format_finite(v).as_bytes());
    } else {
        write_number(out, buffer, v);
    }
}

/// `v` as [`write_number`] writes it, as text: a bucket bound or quantile
/// as a label value (`0.01`, `1`, `+Inf`).
pub fn number_text(v: f64) -> String {
    let mut out = Vec::new();
    write_number(&mut out, &mut ryu::Buffer::new(), v);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_decimals_infinities_and_nan() {
        for (v, text) in [
            (1.0, "1"),
            (-3.0, "-3"),
            (0.0, "0"),
            (0.01, "0.01"),
            (-0.5, "-0.5"),
            (1e20, "1e20"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (9_007_199_254_740_991.0, "9007199254740991"),
        ] {
            assert_eq!(number_text(v), text, "{v}");
        }
        let mut out = Vec::new();
        write_canonical(&mut out, &mut ryu::Buffer::new(), 1.0);
        assert_eq!(out, b"1.0");
    }
}
