#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod render;
mod server;
mod settings;

pub use render::{render, Format, Renderer};
pub use settings::{Settings, Timers, DEFAULT_LISTEN, DEFAULT_PATH};

use server::{Endpoint, Published};
use settings::Checked;
use zibrato_backend_api::settings::SettingError;
use zibrato_backend_api::{Backend, BackendError, FlushReport, Logger, Measurement};
use zibrato_prometheus_series::Store;

/// The backend: a [`Store`] recorded into as measurements are posted,
/// rendered at each flush and served by a scrape endpoint.
pub struct PrometheusBackend {
    settings: Checked,
    store: Store,
    /// Keeps the page's layout from one flush to the next.
    renderer: Renderer,
    /// The last pages' lengths (text, OpenMetrics): the next pages' buffers
    /// start at them rather than grow there.
    page_sizes: (usize, usize),
    published: Published,
    endpoint: Option<Endpoint>,
    logger: Logger,
}

impl Backend for PrometheusBackend {
    const NAME: &'static str = "prometheus";
    const DESCRIPTION: &'static str =
        "serves a Prometheus scrape endpoint (text 0.0.4 and OpenMetrics) of cumulative series";
    type Settings = Settings;

    fn new(settings: Settings, logger: Logger) -> Result<Self, BackendError> {
        let settings = settings.check()?;
        Ok(PrometheusBackend {
            store: Store::new(settings.store.clone()),
            renderer: Renderer::new(),
            page_sizes: (0, 0),
            settings,
            published: Published::default(),
            endpoint: None,
            logger,
        })
    }

    fn connect(&mut self) -> Result<(), BackendError> {
        if self.endpoint.is_none() {
            let (text, openmetrics, _) = self.render();
            self.published.publish(text, openmetrics);
            let endpoint = Endpoint::start(
                self.settings.listen,
                self.settings.path.clone(),
                self.published.clone(),
            )
            .map_err(|e| SettingError::new("listen", e))?;
            self.logger.info(format_args!(
                "serving http://{}{}",
                endpoint.address(),
                self.settings.path
            ));
            self.endpoint = Some(endpoint);
        }
        Ok(())
    }

    fn post(&mut self, m: &Measurement<'_>) -> Result<(), BackendError> {
        // A refusal is the host's to count, as every backend's is.
        self.store.add(m).map_err(BackendError::new)
    }

    fn flush(&mut self, now: i64) -> Result<FlushReport, BackendError> {
        self.flush_at(now.saturating_mul(1000))
    }

    fn close(&mut self) -> Result<(), BackendError> {
        if let Some(endpoint) = self.endpoint.take() {
            endpoint.stop();
        }
        Ok(())
    }
}

impl PrometheusBackend {
    /// Both pages of the store as it is (text, OpenMetrics), and how many
    /// series were left off them (their family name is another kind's).
    fn render(&mut self) -> (Vec<u8>, Vec<u8>, usize) {
        // A little more than last time: series come and go.
        let size = |last: usize| (last + last / 8).max(64 * 1024);
        let mut text = Vec::with_capacity(size(self.page_sizes.0));
        let mut openmetrics = Vec::with_capacity(size(self.page_sizes.1));
        let left_out = self.renderer.render(&self.store, Format::Text, &mut text);
        self.renderer
            .render(&self.store, Format::OpenMetrics, &mut openmetrics);
        self.page_sizes = (text.len(), openmetrics.len());
        (text, openmetrics, left_out)
    }

    fn flush_at(&mut self, now_ms: i64) -> Result<FlushReport, BackendError> {
        let expired = self.store.flush(now_ms);
        if expired > 0 {
            self.logger.debug(format_args!(
                "{expired} series not updated for ttl ({:?}) left the page",
                self.settings.store.ttl
            ));
        }
        let (text, openmetrics, left_out) = self.render();
        self.published.publish(text, openmetrics);
        if left_out > 0 {
            self.logger.warn(format_args!(
                "{left_out} series left off the page: their family name is another kind's"
            ));
        }
        // `post` refused them, and the host counted them there.
        self.store.take_dropped();
        Ok(FlushReport {
            flushed: self.store.len() as u64,
            dropped: 0,
            pending: 0,
        })
    }

    /// The address the endpoint listens on, once connected.
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        self.endpoint.as_ref().map(Endpoint::address)
    }
}

// The line that makes this crate a Zibrato plugin: it exports the root
// module, `zibrato_backend_module()`.
zibrato_backend_api::export_backend!(PrometheusBackend);

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use zibrato_backend_api::testing::{backend, counter};

    fn get(backend: &PrometheusBackend, path: &str, headers: &str) -> String {
        let mut stream = TcpStream::connect(backend.address().unwrap()).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\n{headers}\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    fn started(settings: &str) -> PrometheusBackend {
        let mut b = backend::<PrometheusBackend>(settings).unwrap();
        b.connect().unwrap();
        b
    }

    #[test]
    fn the_page_shows_each_flush_whole_and_counters_grow() {
        let mut b = started(r#"{"listen":"127.0.0.1:0"}"#);
        assert!(get(&b, "/metrics", "").starts_with("HTTP/1.0 200"));
        b.post(&counter("requests", 5.0)).unwrap();
        let page = get(&b, "/metrics", "");
        assert!(!page.contains("requests"), "not before the flush: {page}");
        b.flush_at(1_000).unwrap();
        let page = get(&b, "/metrics", "");
        assert!(
            page.contains("\r\n\r\n# HELP requests_total Zibrato counter.\n"),
            "{page}"
        );
        assert!(
            page.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            "{page}"
        );
        b.post(&counter("requests", 37.0)).unwrap();
        b.flush_at(2_000).unwrap();
        assert!(get(&b, "/metrics", "").ends_with("requests_total{level=\"info\"} 42\n"));
        b.close().unwrap();
    }

    #[test]
    fn other_paths_are_not_found_and_openmetrics_is_served_when_asked() {
        let mut b = started(r#"{"listen":"127.0.0.1:0","path":"/m"}"#);
        assert!(get(&b, "/metrics", "").starts_with("HTTP/1.0 404"));
        let page = get(
            &b,
            "/m?x=1",
            "Accept: application/openmetrics-text;version=1.0.0\r\n",
        );
        assert!(
            page.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
            "{page}"
        );
        assert!(page.ends_with("\r\n\r\n# EOF\n"), "{page}");
        b.close().unwrap();
    }

    #[test]
    fn a_port_in_use_is_an_error_naming_listen() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let mut b =
            backend::<PrometheusBackend>(&format!(r#"{{"listen":"127.0.0.1:{port}"}}"#)).unwrap();
        let e = b.connect().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "bad setting listen: cannot listen on 127.0.0.1:{port}"
            )),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn measurements_past_max_series_or_not_finite_are_refused_by_post() {
        let mut b = backend::<PrometheusBackend>(r#"{"max_series":1}"#).unwrap();
        b.post(&counter("a", 1.0)).unwrap();
        b.post(&counter("a", 2.0)).unwrap();
        let e = b.post(&counter("b", 1.0)).unwrap_err().to_string();
        assert!(e.contains("max_series (1)"), "{e}");
        let e = b.post(&counter("a", f64::NAN)).unwrap_err().to_string();
        assert!(e.contains("finite"), "{e}");
        let report = b.flush_at(1_000).unwrap();
        assert_eq!((report.flushed, report.dropped), (1, 0));
        assert!(b.render().0.ends_with(b"a_total{level=\"info\"} 3\n"));
    }

    #[test]
    fn the_exported_module_names_the_backend() {
        let module = zibrato_backend_module();
        assert_eq!(module.name().as_str(), "prometheus");
    }
}
