//! A real Prometheus (the Debian package's `prometheus`, which
//! `scripts/test` installs), started for one test on a port and data
//! directory of its own: scraping a target, or taking remote writes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::{self, query_escape};
use crate::DEADLINE;

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
    /// every second, and waits until it is ready.
    pub fn start(target: &str, metrics_path: &str) -> Prometheus {
        Prometheus::launch(
            &format!(
                "scrape_configs:\n  - job_name: zibrato\n    scrape_interval: 1s\n    \
                 scrape_timeout: 1s\n    metrics_path: {metrics_path}\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
            &[],
        )
    }

    /// Starts Prometheus with its remote-write receiver on
    /// (`/api/v1/write`) and nothing to scrape, and waits until it is ready.
    pub fn start_receiver() -> Prometheus {
        Prometheus::launch("", &["--web.enable-remote-write-receiver"])
    }

    fn launch(scrape: &str, flags: &[&str]) -> Prometheus {
        let binary = Prometheus::binary().unwrap_or_else(|| {
            panic!("no prometheus binary on PATH or at /usr/bin/prometheus: scripts/test installs it (apt-get install prometheus)")
        });
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
            format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{scrape}"),
        )
        .expect("write the config");
        let address = format!("127.0.0.1:{}", crate::free_port_pair());
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .args(flags)
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
        while !matches!(http::get(&prometheus.address, "/-/ready"), Ok(r) if r.status == 200) {
            assert!(
                Instant::now() < end,
                "prometheus not ready within {DEADLINE:?}: {}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// Its address (`host:port`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Its remote-write URL (for [`Prometheus::start_receiver`]).
    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.address)
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The answer to an instant query of `expr` (a vector or a scalar).
    pub fn query(&self, expr: &str) -> Vec<QuerySample> {
        let path = format!("/api/v1/query?query={}", query_escape(expr));
        let response = http::get(&self.address, &path).expect("query prometheus");
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
