//! Running the crate's examples as child processes, as a user would.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The path of example `name`, built beside the test binaries
/// (`target/<profile>/examples/`) by `cargo test -p zibrato` or
/// `cargo build -p zibrato --examples`.
pub fn path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p zibrato --examples` (plain `cargo test -p zibrato` builds it)",
        path.display()
    );
    path
}

/// Runs example `name` with `args`, its client pointed at `port`, to its
/// end; fails if it runs past [`super::DEADLINE`] or does not succeed.
pub fn run(name: &str, args: &[&str], port: u16) -> Output {
    let mut child = Command::new(path(name))
        .args(args)
        .env("ZIBRATO_PORT", port.to_string())
        .env_remove("ZIBRATO_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > super::DEADLINE {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{name} still running after {:?}; stderr: {}",
                super::DEADLINE,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
