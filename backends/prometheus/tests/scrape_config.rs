//! The ready scrape config in `examples/ops/` is one Prometheus accepts, and
//! points at the backend's default endpoint.

use std::process::Command;

#[test]
fn the_example_scrape_config_is_valid_and_targets_the_default_endpoint() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/ops/prometheus.yml"
    );
    let out = Command::new("promtool")
        .args(["check", "config", path])
        .output()
        .expect("promtool (Debian's prometheus package, which scripts/test installs)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(zibrato_prometheus::DEFAULT_LISTEN), "{text}");
    assert!(text.contains(&format!(
        "metrics_path: {}",
        zibrato_prometheus::DEFAULT_PATH
    )));
}
