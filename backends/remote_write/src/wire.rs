//! The remote-write 1.0 wire: the protocol's protobuf messages and one
//! request's body, snappy-compressed (the block format, as the protocol
//! requires).
//!
//! The four messages are written out here with `prost`'s derive rather than
//! generated from `remote.proto` and `types.proto` at build time: they are the
//! protocol's whole 1.0 subset (`WriteRequest`, `TimeSeries`, `Label`,
//! `Sample`), their field numbers are normative and fixed, and a build step
//! would need `protoc` on every machine that builds the plugin.

use prost::Message;

/// The `Content-Type` of a request.
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// The `Content-Encoding` of a request.
pub const CONTENT_ENCODING: &str = "snappy";

/// The header naming the protocol's version, and its value for 1.0.
pub const VERSION_HEADER: (&str, &str) = ("X-Prometheus-Remote-Write-Version", "0.1.0");

/// The label holding a series' metric name.
pub const NAME_LABEL: &str = "__name__";

/// `prometheus.WriteRequest`: the body of one request.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    /// The series, each with its samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: one series' labels and samples.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    /// The labels, `__name__` among them, sorted by name, none twice, none
    /// with an empty value.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// The samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Label {
    /// The label's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// When, in milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

impl TimeSeries {
    /// A series named `name` with `labels` (any order; empty values left
    /// out, as the protocol asks) and no samples yet.
    pub fn new<'a>(
        name: &'a str,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> TimeSeries {
        let mut all: Vec<Label> = std::iter::once((NAME_LABEL, name))
            .chain(labels)
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| Label {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.dedup_by(|later, earlier| later.name == earlier.name);
        TimeSeries {
            labels: all,
            samples: Vec::new(),
        }
    }

    /// Adds a sample.
    pub fn push(&mut self, value: f64, timestamp_ms: i64) {
        self.samples.push(Sample {
            value,
            timestamp: timestamp_ms,
        });
    }
}

/// Turns requests into bodies, keeping its buffers from one to the next.
pub struct Encoder {
    protobuf: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

impl Encoder {
    /// An encoder with empty buffers.
    pub fn new() -> Encoder {
        Encoder {
            protobuf: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    /// The body of a request carrying `request`: its protobuf encoding,
    /// snappy-compressed.
    pub fn body(&mut self, request: &WriteRequest) -> Vec<u8> {
        self.protobuf.clear();
        self.protobuf.reserve(request.encoded_len());
        request
            .encode(&mut self.protobuf)
            .expect("a Vec grows as needed");
        self.snappy
            .compress_vec(&self.protobuf)
            .expect("snappy compresses any input below 4 GiB")
    }
}

/// Reads a body back (what a receiver does): for tests and doubles.
pub fn decode(body: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("not snappy's block format: {e}"))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| format!("not a WriteRequest: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_named_and_without_empty_values() {
        let series = TimeSeries::new(
            "http_requests_total",
            [
                ("route", "/api"),
                ("level", "info"),
                ("source", ""),
                ("code", "200"),
            ],
        );
        let names: Vec<(&str, &str)> = series
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("__name__", "http_requests_total"),
                ("code", "200"),
                ("level", "info"),
                ("route", "/api"),
            ]
        );
    }

    #[test]
    fn a_label_given_twice_is_kept_once() {
        let series = TimeSeries::new("x", [("a", "1"), ("a", "2")]);
        assert_eq!(series.labels.len(), 2);
    }

    #[test]
    fn a_body_decodes_to_what_was_encoded() {
        let mut series = TimeSeries::new("x", [("level", "info")]);
        series.push(1.5, 1_764_057_600_000);
        series.push(-2.0, 1_764_057_601_000);
        let request = WriteRequest {
            timeseries: vec![series, TimeSeries::new("y", [])],
        };
        let mut encoder = Encoder::new();
        let body = encoder.body(&request);
        assert_eq!(decode(&body).unwrap(), request);
        // The same encoder, the same answer: its buffers carry nothing over.
        assert_eq!(encoder.body(&request), body);
    }

    #[test]
    fn field_numbers_are_the_protocols() {
        // Sample { value = 1 (double), timestamp = 2 (int64) } as protoc
        // encodes it: 0x09 + 8 bytes of the double, 0x10 + varint.
        let sample = Sample {
            value: 1.0,
            timestamp: 300,
        };
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.0f64.to_le_bytes());
        expected.extend_from_slice(&[0x10, 0xac, 0x02]);
        assert_eq!(sample.encode_to_vec(), expected);
        // Label { name = 1, value = 2 }, TimeSeries { labels = 1, samples = 2 },
        // WriteRequest { timeseries = 1 }.
        let label = Label {
            name: "a".into(),
            value: "b".into(),
        };
        assert_eq!(label.encode_to_vec(), [0x0a, 1, b'a', 0x12, 1, b'b']);
        let series = TimeSeries {
            labels: vec![label],
            samples: vec![sample],
        };
        let bytes = series.encode_to_vec();
        assert_eq!(&bytes[..2], [0x0a, 6]);
        assert_eq!(bytes[8], 0x12);
        let request = WriteRequest {
            timeseries: vec![series.clone()],
        };
        assert_eq!(request.encode_to_vec()[0], 0x0a);
    }

    #[test]
    fn bodies_that_are_not_snappy_or_not_a_request_are_errors() {
        assert!(decode(b"plain text").unwrap_err().contains("snappy"));
        let not_protobuf = snap::raw::Encoder::new().compress_vec(&[0xff; 8]).unwrap();
        assert!(decode(&not_protobuf).unwrap_err().contains("WriteRequest"));
    }
}
