//! The quick start shows aggregated measurements of every form within seconds.

use std::process::Command;

#[test]
fn the_quick_start_prints_aggregated_measurements_of_every_form() {
    let output = Command::new(env!("CARGO_BIN_EXE_zibrato-quickstart"))
        .args(["--seconds", "1.5", "--flush", "0.5", "--format", "json"])
        .output()
        .expect("run the quick start");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for (kind, name) in [
        ("counter", "requests"),
        ("counter", "render.calls"),
        ("counter", "errors"),
        ("counter", "rows"),
        ("gauge", "queue.depth"),
        ("timer", "handler"),
        ("timer", "db.query"),
        ("timer", "render"),
    ] {
        let wanted = format!(r#""type":"{kind}","name":"{name}""#);
        assert!(stdout.contains(&wanted), "no {kind} {name} in\n{stdout}");
    }
    assert!(stdout.contains(r#""source":"web1""#), "{stdout}");
    assert!(
        stdout.contains(r#""type":"histogram","name":"payload.bytes""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            r#""name":"http.requests","source":"web1","tags":{"route":"/api","status":"200"}"#
        ),
        "{stdout}"
    );
    assert!(stderr.contains("stdout: received"), "{stderr}");
    // The client lost nothing, and the worker took everything it was sent.
    let stats = stderr
        .lines()
        .find(|l| l.contains("client stats"))
        .expect("client stats");
    for reason in [
        "dropped_queue_full: 0",
        "dropped_hold_full: 0",
        "dropped_unsubscribed: 0",
        "dropped_send_failed: 0",
        "dropped_at_close: 0",
    ] {
        assert!(stats.contains(reason), "{stats}");
    }
    let sent: u64 = stats
        .split("sent: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("sent count");
    let last_counts = stderr
        .lines()
        .rfind(|l| l.contains("stdout: received"))
        .expect("worker counts");
    assert!(
        last_counts.contains(&format!("received {sent} malformed 0 posted {sent} ")),
        "client sent {sent}, worker: {last_counts}"
    );
}
