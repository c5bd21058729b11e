//! The scrape endpoint: a small HTTP server on threads of its own, serving
//! the page of the last flush.
//!
//! The backend's thread renders both formats at each flush and swaps them in
//! whole ([`Published::publish`]); a scrape takes the current pages (a lock
//! held only to clone an `Arc`, never while rendering) and so sees one flush,
//! the previous or the next, never a part of one. Gzip is made once per
//! flush and format, by the first scrape that asks for it.

use crate::render::Format;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use tiny_http::{Header, Method, Request, Response, Server};

/// How many threads answer scrapes: one more than one, so that a slow
/// scraper does not hold up another.
const THREADS: usize = 2;

/// One flush's page, in one format.
#[derive(Default)]
struct Page {
    body: Vec<u8>,
    gzipped: OnceLock<Vec<u8>>,
}

impl Page {
    fn gzipped(&self) -> &[u8] {
        self.gzipped.get_or_init(|| {
            let mut encoder =
                GzEncoder::new(Vec::with_capacity(self.body.len() / 4), Compression::fast());
            // Writing into a Vec cannot fail.
            let _ = encoder.write_all(&self.body);
            encoder.finish().unwrap_or_default()
        })
    }
}

/// One flush's pages.
#[derive(Default)]
struct Pages {
    text: Page,
    openmetrics: Page,
}

/// The pages scrapes are served, swapped whole at each flush.
#[derive(Clone, Default)]
pub struct Published(Arc<Mutex<Arc<Pages>>>);

impl Published {
    /// Makes `text` and `openmetrics` the pages served from now on.
    pub fn publish(&self, text: Vec<u8>, openmetrics: Vec<u8>) {
        let pages = Arc::new(Pages {
            text: Page {
                body: text,
                gzipped: OnceLock::new(),
            },
            openmetrics: Page {
                body: openmetrics,
                gzipped: OnceLock::new(),
            },
        });
        // The old pages are dropped outside the lock, by their last reader.
        let old = std::mem::replace(&mut *self.lock(), pages);
        drop(old);
    }

    fn current(&self) -> Arc<Pages> {
        Arc::clone(&self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<Pages>> {
        // A panic while swapping an Arc leaves it whole: go on with it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running endpoint. Dropping it stops it.
pub struct Endpoint {
    server: Arc<Server>,
    threads: Vec<JoinHandle<()>>,
    address: SocketAddr,
}

impl Endpoint {
    /// Listens on `listen` and serves `published` at `path`. The error is
    /// one line, for the `listen` setting.
    pub fn start(
        listen: SocketAddr,
        path: String,
        published: Published,
    ) -> Result<Endpoint, String> {
        let server = Server::http(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let address = server.server_addr().to_ip().unwrap_or(listen);
        let server = Arc::new(server);
        let path: Arc<str> = path.into();
        let threads = (0..THREADS)
            .map(|i| {
                let server = Arc::clone(&server);
                let path = Arc::clone(&path);
                let published = published.clone();
                std::thread::Builder::new()
                    .name(format!("prometheus-http-{i}"))
                    .spawn(move || {
                        for request in server.incoming_requests() {
                            answer(request, &path, &published);
                        }
                    })
                    .map_err(|e| format!("cannot start the scrape endpoint's thread: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Endpoint {
            server,
            threads,
            address,
        })
    }

    /// The address it listens on (its port when `listen` gave port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops listening and waits for the threads to finish their request.
    pub fn stop(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        for _ in &self.threads {
            self.server.unblock();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII constants of this file.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("an ASCII header")
}

fn answer(request: Request, path: &str, published: &Published) {
    let wanted = request.url().split('?').next().unwrap_or("");
    let method = request.method().clone();
    if wanted != path || !matches!(method, Method::Get | Method::Head) {
        let (status, text) = if wanted != path {
            (404, format!("not found: the metrics are at {path}\n"))
        } else {
            (405, "only GET and HEAD\n".to_string())
        };
        let _ = request.respond(Response::from_string(text).with_status_code(status));
        return;
    }
    let header_value = |name: &str| {
        request
            .headers()
            .iter()
            .filter(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let format = if accepts(&header_value("Accept"), "application/openmetrics-text") {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    let gzip = accepts(&header_value("Accept-Encoding"), "gzip");
    let pages = published.current();
    let page = match format {
        Format::Text => &pages.text,
        Format::OpenMetrics => &pages.openmetrics,
    };
    let body = if gzip { page.gzipped() } else { &page.body[..] };
    let mut response = Response::from_data(body.to_vec())
        .with_header(header("Content-Type", format.content_type()))
        .with_header(header("Vary", "Accept, Accept-Encoding"));
    if gzip {
        response = response.with_header(header("Content-Encoding", "gzip"));
    }
    let _ = request.respond(response);
}

/// Whether a header listing media types or encodings (`a;q=0.5, b`) accepts
/// `what` (any q but 0).
pub(crate) fn accepts(header: &str, what: &str) -> bool {
    header.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        name.eq_ignore_ascii_case(what)
            && !parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f64>().ok())
                    == Some(0.0)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_are_read_as_prometheus_sends_them() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(accepts(prometheus, "application/openmetrics-text"));
        assert!(!accepts(
            "text/plain;version=0.0.4",
            "application/openmetrics-text"
        ));
        assert!(!accepts(
            "application/openmetrics-text; q=0",
            "application/openmetrics-text"
        ));
        assert!(accepts("deflate, GZIP;q=0.5", "gzip"));
        assert!(!accepts("gzip;q=0", "gzip"));
        assert!(!accepts("", "gzip"));
    }

    #[test]
    fn a_gzipped_page_reads_back_as_the_page() {
        let page = Page {
            body: b"a_total{level=\"info\"} 1\n".repeat(100),
            gzipped: OnceLock::new(),
        };
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(page.gzipped()), &mut back)
            .unwrap();
        assert_eq!(back, page.body);
        assert!(page.gzipped().len() < page.body.len() / 10);
    }
}
