//! A real VictoriaMetrics (the Debian package's `victoria-metrics`), started
//! for one test on a port and data directory of its own.

use crate::http::{self, query_escape};
use crate::{Process, DEADLINE};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A running VictoriaMetrics; stopped, and its data removed, on drop.
pub struct VictoriaMetrics {
    process: Process,
    addr: String,
    data: PathBuf,
}

/// One series as `/api/v1/export` gives it back: labels, then samples
/// (milliseconds, value), oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// `__name__` and the other labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// (timestamp in ms, value), oldest first.
    pub samples: Vec<(i64, f64)>,
}

impl VictoriaMetrics {
    /// Starts it on a free port and waits until it answers `/health`;
    /// panics when it is not installed.
    pub fn start() -> VictoriaMetrics {
        let port = crate::free_port_pair();
        let addr = format!("127.0.0.1:{port}");
        let data = std::env::temp_dir().join(format!("zibrato-vm-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut command = Command::new("victoria-metrics");
        command
            .arg(format!("-storageDataPath={}", data.display()))
            .arg(format!("-httpListenAddr={addr}"))
            .arg("-loggerLevel=ERROR")
            // Every sample visible to a query as soon as it is flushed.
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache");
        if Command::new("victoria-metrics")
            .arg("-version")
            .output()
            .is_err()
        {
            panic!("victoria-metrics is missing: scripts/test installs it (apt-get install victoria-metrics)");
        }
        let vm = VictoriaMetrics {
            process: Process::spawn(command),
            addr,
            data,
        };
        let end = Instant::now() + DEADLINE;
        loop {
            if http::get(&vm.addr, "/health").is_ok_and(|a| a.status == 200) {
                return vm;
            }
            assert!(
                Instant::now() < end,
                "VictoriaMetrics did not start\n{}",
                vm.process.transcript()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its address (`host:port`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Its remote-write URL.
    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// Every series matching `selector` (`{__name__=~"x.*"}`), with all its
    /// raw samples, sorted by labels; what was written is flushed to the
    /// searchable storage first.
    pub fn export(&self, selector: &str) -> Vec<Exported> {
        let flushed = http::get(&self.addr, "/internal/force_flush").expect("force_flush");
        assert_eq!(flushed.status, 200, "{}", flushed.text());
        let target = format!("/api/v1/export?match[]={}", query_escape(selector));
        let answer = http::get(&self.addr, &target).expect("export");
        assert_eq!(answer.status, 200, "{}", answer.text());
        let mut series: Vec<Exported> = answer
            .text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).expect("export line");
                let mut labels: Vec<(String, String)> = v["metric"]
                    .as_object()
                    .expect("metric")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                labels.sort();
                let values = v["values"].as_array().expect("values");
                let times = v["timestamps"].as_array().expect("timestamps");
                let mut samples: Vec<(i64, f64)> = times
                    .iter()
                    .zip(values)
                    .map(|(t, v)| (t.as_i64().expect("ms"), v.as_f64().expect("value")))
                    .collect();
                samples.sort_by_key(|s| s.0);
                Exported { labels, samples }
            })
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
    }

    /// Waits until `selector` matches at least `n` series and returns them.
    pub fn wait_for(&self, selector: &str, n: usize) -> Vec<Exported> {
        let end = Instant::now() + DEADLINE;
        loop {
            let found = self.export(selector);
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < end,
                "VictoriaMetrics holds {} series matching {selector}, not {n}: {found:?}",
                found.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        self.process.signal(libc::SIGKILL);
        let _ = self.process.wait_exit();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
