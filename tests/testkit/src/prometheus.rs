//! A real Prometheus server scraping a target, for the prometheus
//! backend's end-to-end tests, and a plain HTTP GET for fetching pages.
//!
//! [`Prometheus::start`] returns `None` (after saying why) when no
//! `prometheus` binary is installed, so that the tests needing one skip.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::DEADLINE;

/// A response to [`http_get`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body, as sent (not decompressed).
    pub body: Vec<u8>,
}

/// A GET of `path` from `address` (`host:port`) with extra `headers`, over
/// HTTP/1.0 so that the body ends with the connection.
pub fn http_get(
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: answer[split + 4..].to_vec(),
    })
}

/// A free TCP port on 127.0.0.1 just now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One sample of a query's answer: its labels (with `__name__` when the
/// answer has one) and its value.
pub type QuerySample = (BTreeMap<String, String>, f64);

/// A running Prometheus, killed and its directory removed on drop.
pub struct Prometheus {
    child: Child,
    address: String,
    dir: PathBuf,
}

impl Prometheus {
    /// The installed `prometheus` binary, if any (on `PATH`, or
    /// `/usr/bin/prometheus`).
    pub fn binary() -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("prometheus"))
            .chain([PathBuf::from("/usr/bin/prometheus")])
            .find(|p| p.is_file())
    }

    /// Starts Prometheus scraping `target` (`host:port`) at `metrics_path`
    /// every second, and waits until it is ready. `None`, after printing
    /// why, when no `prometheus` binary is installed.
    pub fn start(target: &str, metrics_path: &str) -> Option<Prometheus> {
        let Some(binary) = Prometheus::binary() else {
            eprintln!("skipped: no prometheus binary on PATH or at /usr/bin/prometheus");
            return None;
        };
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "zibrato-prometheus-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: zibrato\n    scrape_interval: 1s\n    \
                 scrape_timeout: 1s\n    metrics_path: {metrics_path}\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write the config");
        let address = format!("127.0.0.1:{}", free_port());
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).expect("a log file"))
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus {
            child,
            address,
            dir,
        };
        let end = Instant::now() + DEADLINE;
        while !matches!(http_get(&prometheus.address, "/-/ready", &[]), Ok(r) if r.status == 200) {
            assert!(
                Instant::now() < end,
                "prometheus not ready within {DEADLINE:?}: {}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(prometheus)
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The answer to an instant query of `expr` (a vector or a scalar).
    pub fn query(&self, expr: &str) -> Vec<QuerySample> {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let response = http_get(&self.address, &path, &[]).expect("query prometheus");
        let json: serde_json::Value =
            serde_json::from_slice(&response.body).expect("a JSON answer");
        assert_eq!(json["status"], "success", "query {expr:?}: {json}");
        let value = |v: &serde_json::Value| -> f64 {
            v[1].as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN)
        };
        match json["data"]["resultType"].as_str() {
            Some("vector") => json["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|sample| {
                    let labels = sample["metric"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect();
                    (labels, value(&sample["value"]))
                })
                .collect(),
            Some("scalar") => vec![(BTreeMap::new(), value(&json["data"]["result"]))],
            other => panic!("query {expr:?}: an answer of type {other:?}"),
        }
    }

    /// Queries `expr` every 200 ms until `done` holds for the answer, and
    /// returns it; panics after [`DEADLINE`] with the last answer.
    pub fn wait_for(&self, expr: &str, done: impl Fn(&[QuerySample]) -> bool) -> Vec<QuerySample> {
        let end = Instant::now() + DEADLINE;
        loop {
            let answer = self.query(expr);
            if done(&answer) {
                return answer;
            }
            assert!(
                Instant::now() < end,
                "{expr:?} never came right within {DEADLINE:?}; last {answer:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `text` with every byte but the unreserved ones percent-encoded, for a
/// query string.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
