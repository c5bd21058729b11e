//! How the real `zibrato-worker` stops: a second signal ends it at once, even
//! while a backend is stuck in its last flush. Run `cargo build --workspace`
//! first.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zibrato_testkit::{taken, Broker, Publisher, Worker, DEADLINE};

/// The worker's own grace for a last flush (`SHUTDOWN_GRACE` in its
/// `main.rs`): a worker that waited it out did not obey the second signal.
const WORKER_GRACE: Duration = Duration::from_secs(30);

/// An HTTP endpoint that answers the first request (the librato backend's
/// credentials check) and then accepts connections without ever answering:
/// a request to it hangs until the client gives up. Returns its port and
/// how many requests it is holding.
fn answer_once_then_hang() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&held);
    std::thread::spawn(move || {
        let mut hanging: Vec<TcpStream> = Vec::new();
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            if i == 0 {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                );
            } else {
                hanging.push(stream);
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (port, held)
}

#[test]
fn a_second_signal_ends_the_worker_at_once_while_a_backend_hangs_in_its_last_flush() {
    let (api_port, held) = answer_once_then_hang();
    let api_url = format!("librato.api_url=http://127.0.0.1:{api_port}/v1/metrics");
    let broker = Broker::start();
    let mut worker = Worker::start_on(
        broker.worker_port(),
        &[
            "--plugin",
            "librato",
            "--levels",
            "info",
            "--flush",
            "3600",
            "--set",
            &api_url,
            "--set",
            "librato.username=me@example.com",
            "--set",
            "librato.token=not-a-secret",
            // Far longer than the worker's grace: only the second signal
            // can end the last flush early.
            "--set",
            "librato.timeout=600s",
        ],
        &[("ZIBRATO_LOG", "debug")],
    );
    let publisher = Publisher::connect(&broker);
    publisher.probe_until("info", || taken(&worker.stderr().get(), "posted") > 0);

    worker.signal(libc::SIGTERM);
    worker.wait_stderr("the last flush", |lines| {
        lines.iter().any(|l| l.contains("stopping: last flush"))
    });
    let until = Instant::now() + DEADLINE;
    while held.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < until,
            "the last flush never reached the API\n{}",
            worker.transcript()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = Instant::now();
    worker.signal(libc::SIGTERM);
    let status = worker.wait_exit();
    let took = second.elapsed();
    let stderr = worker.stderr().get();
    assert_eq!(status.code(), Some(1), "{}", worker.transcript());
    assert!(
        !stderr
            .iter()
            .any(|l| l.contains("did not finish") || l.contains("zibrato-worker: stopped")),
        "the worker waited for the flush instead:\n{}",
        worker.transcript()
    );
    // A generous bound, far below the grace the worker would otherwise wait.
    assert!(took < WORKER_GRACE / 2, "{took:?} after the second signal");
}
