//! A deliberately broken Zibrato backend, `panicky`, for the worker's tests:
//! it panics in the operation its `panic_in` setting names, so that tests can
//! check a plugin's panic is reported as an error and the worker carries on.
//! Not for use outside tests.
//!
//! `panic_in`: `"flush"` (the default), `"post"`, `"connect"`, `"new"` or
//! `"never"`. The panic message is `panicky backend: deliberate panic in OP`.
//! When it does not panic it counts posts and reports them at each flush.

#![warn(missing_docs)]

use serde::Deserialize;
use zibrato_backend_api::{Backend, BackendError, FlushReport, Logger, Measurement};

/// The `[backends.panicky]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where to panic.
    pub panic_in: PanicIn,
}

/// The operation that panics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanicIn {
    /// `new`, while the worker starts.
    New,
    /// `connect`.
    Connect,
    /// `post`, at every measurement.
    Post,
    /// `flush`, at every flush.
    #[default]
    Flush,
    /// Nowhere: a well-behaved counter of posts.
    Never,
}

/// The backend: panics where told, counts posts otherwise.
#[derive(Debug)]
pub struct Panicky {
    panic_in: PanicIn,
    posted: u64,
}

impl Panicky {
    fn maybe_panic(&self, op: PanicIn, name: &str) {
        if self.panic_in == op {
            panic!("panicky backend: deliberate panic in {name}");
        }
    }
}

impl Backend for Panicky {
    const NAME: &'static str = "panicky";
    const DESCRIPTION: &'static str = "panics on purpose, for the worker's tests";
    type Settings = Settings;

    fn new(settings: Settings, _logger: Logger) -> Result<Self, BackendError> {
        let backend = Panicky {
            panic_in: settings.panic_in,
            posted: 0,
        };
        backend.maybe_panic(PanicIn::New, "new");
        Ok(backend)
    }

    fn connect(&mut self) -> Result<(), BackendError> {
        self.maybe_panic(PanicIn::Connect, "connect");
        Ok(())
    }

    fn post(&mut self, _m: &Measurement<'_>) -> Result<(), BackendError> {
        self.maybe_panic(PanicIn::Post, "post");
        self.posted += 1;
        Ok(())
    }

    fn flush(&mut self, _now: i64) -> Result<FlushReport, BackendError> {
        self.maybe_panic(PanicIn::Flush, "flush");
        let flushed = std::mem::take(&mut self.posted);
        Ok(FlushReport {
            flushed,
            ..FlushReport::default()
        })
    }
}

// The line that makes this crate a Zibrato plugin: it exports the root
// module, `zibrato_backend_module()`.
zibrato_backend_api::export_backend!(Panicky);

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::std_types::{RResult, RStr};
    use zibrato_backend_api::abi::{BackendBox, FrameBatch};
    use zibrato_backend_api::testing::discard_logger;

    /// A backend made through the exported module, as the worker makes it.
    fn load(panic_in: &str) -> Result<BackendBox, String> {
        let settings = serde_json::json!({ "panic_in": panic_in }).to_string();
        let new = zibrato_backend_module().new();
        new(RStr::from_str(&settings), discard_logger("panicky"))
            .into_result()
            .map_err(|e| e.into_string())
    }

    fn post_one(backend: &mut BackendBox) -> Result<u64, String> {
        let frame = b"info|Counter|requests|1|0|web1";
        let ends = [frame.len() as u32];
        match backend.ingest(FrameBatch::new(frame, &ends)) {
            RResult::ROk(report) => Ok(report.posted),
            RResult::RErr(e) => Err(e.into_string()),
        }
    }

    fn expect_panic_error<T>(result: Result<T, String>, op: &str) {
        let Err(e) = result else {
            panic!("expected the panic in {op} as an error");
        };
        assert!(
            e.contains(&format!("panicky backend: deliberate panic in {op}")),
            "{e}"
        );
    }

    #[test]
    fn panics_in_flush_by_default_and_the_glue_turns_it_into_an_error() {
        let mut backend = load("flush").unwrap();
        backend.connect().unwrap();
        assert_eq!(post_one(&mut backend), Ok(1));
        expect_panic_error(
            backend.flush(0).into_result().map_err(|e| e.into()),
            "flush",
        );
        let default = serde_json::from_str::<Settings>("{}").unwrap();
        assert_eq!(default.panic_in, PanicIn::Flush);
    }

    #[test]
    fn panics_where_told() {
        expect_panic_error(load("new"), "new");
        let mut backend = load("connect").unwrap();
        expect_panic_error(
            backend.connect().into_result().map_err(|e| e.into()),
            "connect",
        );
        let mut backend = load("post").unwrap();
        expect_panic_error(post_one(&mut backend), "post");
    }

    #[test]
    fn never_counts_posts() {
        let mut backend = load("never").unwrap();
        backend.connect().unwrap();
        post_one(&mut backend).unwrap();
        post_one(&mut backend).unwrap();
        assert_eq!(backend.flush(0).unwrap().flushed, 2);
        assert_eq!(backend.flush(0).unwrap().flushed, 0);
        backend.close().unwrap();
    }

    #[test]
    fn an_unknown_operation_is_a_setting_error() {
        let e = load("sometimes").err().unwrap();
        assert!(e.contains("bad setting panic_in"), "{e}");
    }
}
