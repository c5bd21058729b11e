//! The `[backends.statsd]` settings.

use serde::Deserialize;
use zibrato_backend_api::aggregate::DEFAULT_MAX_SERIES;
use zibrato_backend_api::settings::SettingError;

/// The usual payload limit: fits an Ethernet MTU of 1500 with IPv6 and UDP
/// headers to spare, so no datagram is fragmented.
pub const DEFAULT_MAX_PACKET: usize = 1432;

/// Default cap on timer samples held between two flushes.
pub const DEFAULT_MAX_PENDING: usize = 100_000;

/// Where and how the statsd backend sends, read from `[backends.statsd]` or
/// `--set statsd.KEY=VALUE`. A misspelt key is an error naming it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The statsd server's host name or address (default `127.0.0.1`).
    pub host: String,
    /// Its port (default 8125).
    pub port: u16,
    /// Put in front of every name, joined with a dot (default none).
    pub prefix: String,
    /// The largest datagram sent, in bytes (default 1432; 512 for the open
    /// internet, 8932 for jumbo frames). A single line longer than this is
    /// sent alone rather than cut.
    pub max_packet: usize,
    /// How labels and the source travel: `"graphite"` (the default: the
    /// source in the name, labels as Graphite tags after it), `"dogstatsd"`
    /// (both as DogStatsD tags) or `"none"` (both folded into the name).
    pub tags: TagStyle,
    /// `"udp"` (the default) or `"tcp"` (newline-terminated lines over one
    /// connection, made again after a failure).
    pub protocol: Protocol,
    /// Whether the level joins the name (after the prefix) or, with
    /// `tags = "dogstatsd"`, becomes a `level:…` tag (default false).
    pub include_level: bool,
    /// The most counter series and gauge series (each) held between flushes.
    pub max_series: usize,
    /// The most timer and histogram samples held between flushes; samples
    /// past it are dropped and counted.
    pub max_pending: usize,
    /// The statsd type histograms are sent as: `"ms"` (the default) or `"h"`.
    pub histograms: HistogramType,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: "127.0.0.1".into(),
            port: 8125,
            prefix: String::new(),
            max_packet: DEFAULT_MAX_PACKET,
            tags: TagStyle::Graphite,
            protocol: Protocol::Udp,
            include_level: false,
            max_series: DEFAULT_MAX_SERIES,
            max_pending: DEFAULT_MAX_PENDING,
            histograms: HistogramType::Ms,
        }
    }
}

impl Settings {
    /// Checks what serde cannot: limits that must be positive, a host given.
    pub fn check(&self) -> Result<(), SettingError> {
        let bad = |key: &str, message: &str| Err(SettingError::new(key, message));
        if self.host.trim().is_empty() {
            return bad("host", "must not be empty");
        }
        if self.port == 0 {
            return bad("port", "must be between 1 and 65535");
        }
        if self.max_packet < 64 || self.max_packet > 65_507 {
            return bad(
                "max_packet",
                "must be between 64 and 65507 bytes (1432, 512 and 8932 are usual)",
            );
        }
        if self.max_series == 0 {
            return bad("max_series", "must be at least 1");
        }
        if self.max_pending == 0 {
            return bad("max_pending", "must be at least 1");
        }
        Ok(())
    }
}

/// How a measurement's labels, source and (with `include_level`) level
/// travel. In every style a labelled series stays apart from the unlabelled
/// one of the same name, and labels are sorted by key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TagStyle {
    /// Source and level in the name, labels as Graphite 1.1 tags after it:
    /// `prefix.web1.name;method=GET:1|c`, which Etsy's statsd (0.9 and
    /// later) files as a tagged series.
    #[default]
    Graphite,
    /// Labels, source and level as DogStatsD tags:
    /// `prefix.name:1|c|#method:GET,source:web1`.
    Dogstatsd,
    /// Everything folded into the name, labels as `key.value` components:
    /// `prefix.web1.name.method.GET:1|c`, for servers without tags.
    None,
}

/// The statsd type a histogram's samples are sent as, each with its raw value
/// (never converted to milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistogramType {
    /// `|ms`, statsd's timer type: the only distribution Etsy's statsd
    /// knows (it counts an unknown type such as `h` as a counter). Negative
    /// values are refused, as statsd would refuse them.
    #[default]
    Ms,
    /// `|h`, the histogram type of DogStatsD, Telegraf and statsd_exporter.
    H,
}

/// How lines travel to statsd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Datagrams of at most `max_packet` bytes, lines separated by `\n`.
    #[default]
    Udp,
    /// One connection, each line ended by `\n`.
    Tcp,
}
