//! The worker's settings end to end through the real `zibrato-worker`
//! binary: what the config file gives, its bounds, the errors of a command
//! line that cannot run, and where plugins are looked for.
//! Run `cargo build --workspace` first.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use zibrato_host::plugin_dir::file_name;
use zibrato_testkit::Worker;

/// Runs the worker with `args` and `env` to completion.
fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let output = Worker::command(args, env)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run zibrato-worker");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs the worker with `args`, which must refuse to start with one line
/// and status 1; returns that line.
fn refused(args: &[&str]) -> String {
    refused_with_env(args, &[])
}

fn refused_with_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let (status, stderr) = run_with_env(args, env);
    assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    stderr.trim_end().to_owned()
}

/// A config file in `dir` holding `text`.
fn config_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("worker.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn no_backend_and_no_level_are_one_line_each() {
    assert_eq!(
        refused(&["--levels", "info"]),
        "zibrato-worker: no backend given: use --plugin NAME (see --list-plugins)"
    );
    assert_eq!(
        refused(&["--plugin", "stdout"]),
        "zibrato-worker: no level given: use --levels info,debug"
    );
}

#[test]
fn a_plugin_given_twice_is_refused() {
    assert_eq!(
        refused(&["--plugin", "stdout", "--plugin", "stdout", "--levels", "info"]),
        r#"zibrato-worker: plugin "stdout" given twice"#
    );
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        "[worker]\nplugins = [\"stdout\", \"stdout\"]\nlevels = [\"info\"]\n",
    );
    assert_eq!(
        refused(&["--config", config.to_str().unwrap()]),
        r#"zibrato-worker: plugin "stdout" given twice"#
    );
}

#[test]
fn the_config_files_worker_settings_out_of_bounds_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (setting, named) in [
        ("port = 0", "bad setting port: 0 is not a port"),
        ("port = 65536", "port"),
        ("port = \"5551\"", "port"),
        (
            "queue_mib = 0",
            "bad setting worker.queue_mib: must be between 1 and 1048576",
        ),
        (
            "queue_mib = 1048577",
            "bad setting worker.queue_mib: must be between 1 and 1048576",
        ),
        ("queue_mib = -1", "queue_mib"),
        ("hwm = 2147483648", "hwm"),
        (
            "hwm = -1",
            "bad setting worker.hwm: must be 0 (no limit) or more",
        ),
        ("host = \"no-such-host.invalid\"", "no-such-host.invalid"),
        ("hots = \"127.0.0.1\"", "hots"),
    ] {
        let config = config_file(
            dir.path(),
            &format!("[worker]\nplugins = [\"stdout\"]\nlevels = [\"info\"]\n{setting}\n"),
        );
        let line = refused(&["--config", config.to_str().unwrap()]);
        assert!(line.contains(named), "{setting}: {line}");
    }
}

#[test]
fn the_config_files_host_and_port_are_where_the_worker_connects() {
    let dir = tempfile::tempdir().unwrap();
    let port = zibrato_testkit::free_port_pair() + 1;
    let config = config_file(
        dir.path(),
        &format!(
            "[worker]\nplugins = [\"stdout\"]\nlevels = [\"info\"]\nhost = \"127.0.0.1\"\n\
             port = {port}\nhwm = 10\nqueue_mib = 1\n"
        ),
    );
    let worker = Worker::start_with_args(&["--config", config.to_str().unwrap()], &[]);
    let expected = format!("receiving info from tcp://127.0.0.1:{port} for stdout");
    worker.wait_stderr("the worker to start", |lines| {
        lines.iter().any(|l| l.contains(&expected))
    });
    // The flags win over the file.
    let worker = Worker::start_with_args(
        &[
            "--config",
            config.to_str().unwrap(),
            "--host",
            "127.0.0.2",
            "--port",
            &(port + 2).to_string(),
        ],
        &[],
    );
    let expected = format!("from tcp://127.0.0.2:{} for stdout", port + 2);
    worker.wait_stderr("the worker to start", |lines| {
        lines.iter().any(|l| l.contains(&expected))
    });
}

/// A directory holding a file named as plugin `name`'s that is no shared
/// library: a worker that picks it names its path in the error.
fn decoy(name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name(name));
    std::fs::write(&path, b"not a shared library").unwrap();
    (dir, path.display().to_string())
}

/// `args` after `first`.
fn with<'a>(first: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
    [first, args].concat()
}

#[test]
fn plugins_are_looked_for_in_the_flag_then_the_environment_then_beside_the_worker() {
    let (flag_dir, in_flag_dir) = decoy("stdout");
    let (env_dir, in_env_dir) = decoy("stdout");
    let (file_dir, in_file_dir) = decoy("stdout");
    let flag = flag_dir.path().to_str().unwrap();
    let env = [("ZIBRATO_PLUGIN_DIR", env_dir.path().to_str().unwrap())];
    let load = ["--plugin", "stdout", "--levels", "info"];

    let line = refused_with_env(&with(&load, &["--plugin-dir", flag]), &env);
    assert!(line.contains(&in_flag_dir), "the flag first: {line}");
    let line = refused_with_env(&load, &env);
    assert!(line.contains(&in_env_dir), "then the environment: {line}");

    // `[worker] plugin_dir` stands where the flag does: below it, above
    // the environment.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_file(
        config_dir.path(),
        &format!("[worker]\nplugin_dir = {:?}\n", file_dir.path()),
    );
    let config = config.to_str().unwrap();
    let line = refused_with_env(
        &with(&load, &["--config", config, "--plugin-dir", flag]),
        &env,
    );
    assert!(
        line.contains(&in_flag_dir),
        "the flag over the file: {line}"
    );
    let line = refused_with_env(&with(&load, &["--config", config]), &env);
    assert!(
        line.contains(&in_file_dir),
        "the file over the environment: {line}"
    );

    // With neither, the directory of the worker's executable.
    let output = Worker::command(&["--list-plugins"], &[]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let listed = String::from_utf8_lossy(&output.stdout);
    let beside = zibrato_testkit::bin_dir().join(file_name("stdout"));
    let stdout_line = listed
        .lines()
        .find(|l| l.starts_with("stdout "))
        .unwrap_or_else(|| panic!("no stdout plugin listed: {listed}"));
    assert!(
        stdout_line.contains(&format!("({})", beside.display())),
        "{stdout_line}"
    );
}
