//! `#[count_me]` and `#[time_me]` on every kind of function, through the
//! process-wide default client, a real broker and a SUB socket.
//!
//! One test function: the default client is set once per process.

mod common;

use common::{start_broker, Worker, DEADLINE};
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use zibrato::Kind;

/// Doubles. (Docs and other attributes stay.)
#[zibrato::count_me(level = "info", name = "double.calls", value = 5, source = "web")]
#[inline(never)]
fn double(n: u32) -> u32 {
    n * 2
}

#[zibrato::time_me(level = "debug", name = "parse")]
fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    std::thread::sleep(Duration::from_millis(20));
    text.parse()
}

#[zibrato::count_me(level = "info")]
fn early_return(n: i32) -> Option<i32> {
    if n < 0 {
        return None;
    }
    Some(n)
}

#[zibrato::time_me(level = "debug", name = "largest")]
fn largest<T: PartialOrd + Copy>(items: &[T]) -> Option<T> {
    items.iter().copied().fold(None, |m, x| {
        if m.is_some_and(|m| m >= x) {
            m
        } else {
            Some(x)
        }
    })
}

#[zibrato::count_me(
    level = "info",
    name = "routed",
    labels(route = "/api", method = "GET")
)]
fn routed() -> u8 {
    1
}

// Keys that are not identifiers are strings; keywords are keys too.
#[zibrato::time_me(level = "debug", labels("db.table" = "orders", r#type = "read"), source = "db")]
fn query() {}

struct Counter {
    n: u64,
}

impl Counter {
    #[zibrato::count_me(level = "info", name = "bump", value = -1.5)]
    fn bump(&mut self) -> &mut Self {
        self.n += 1;
        self
    }

    #[zibrato::time_me(level = "debug", source = "counter")]
    fn read(&self) -> u64 {
        self.n
    }
}

#[zibrato::time_me(level = "debug", name = "fetch")]
async fn fetch(id: u32, pause: Duration) -> Result<u32, String> {
    Sleep::new(pause).await;
    if id == 0 {
        Err("zero".to_owned())
    } else {
        Ok(id * 2)
    }
}

#[zibrato::count_me(level = "info", name = "async.calls")]
async fn async_count(text: &str) -> &str {
    text
}

#[test]
fn decorated_functions_measure_and_return_what_they_returned() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info", "debug"]);
    let client = common::client_for(&broker);
    assert!(zibrato::set_default(client.clone()).is_ok());
    assert!(zibrato::set_default(client.clone()).is_err(), "set once");
    worker.wait_until_subscribed(&client, "info");

    assert_eq!(double(21), 42);
    let got = worker.receive(1, DEADLINE);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (
            got[0].kind,
            got[0].name.as_str(),
            got[0].value,
            got[0].source.as_deref()
        ),
        (Kind::Counter, "double.calls", 5.0, Some("web"))
    );

    assert_eq!(parse("7"), Ok(7));
    assert!(parse("x").is_err(), "an Err comes back unchanged");
    let got = worker.receive(2, DEADLINE);
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .all(|g| g.kind == Kind::Timer && g.name == "parse"));
    assert!(got.iter().all(|g| g.value >= 0.020), "{got:?}");

    assert_eq!(early_return(-1), None);
    assert_eq!(early_return(3), Some(3));
    let got = worker.receive(2, DEADLINE);
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|g| g.name == "early_return" && g.value == 1.0),
        "name defaults to the function's"
    );

    assert_eq!(largest(&[3, 9, 2]), Some(9));
    assert_eq!(largest(&[0.5, -1.0]), Some(0.5));
    let got = worker.receive(2, DEADLINE);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|g| g.name == "largest"), "{got:?}");

    // Labels come sorted by key after the name.
    assert_eq!(routed(), 1);
    query();
    let got = worker.receive(2, DEADLINE);
    let mut got: Vec<_> = got
        .iter()
        .map(|g| (g.kind, g.name.as_str(), g.source.as_deref()))
        .collect();
    // Levels travel in frames of their own: only the order within one is kept.
    got.sort_by_key(|g| g.1);
    assert_eq!(
        got,
        [
            (Kind::Timer, "query;db.table=orders;type=read", Some("db")),
            (Kind::Counter, "routed;method=GET;route=/api", None),
        ]
    );

    let mut counter = Counter { n: 0 };
    counter.bump().bump();
    assert_eq!(counter.read(), 2);
    let got = worker.receive(3, DEADLINE);
    assert_eq!(got.len(), 3);
    let bumps: Vec<_> = got.iter().filter(|g| g.name == "bump").collect();
    assert_eq!(bumps.len(), 2);
    assert_eq!(bumps[0].value, -1.5);
    assert!(got
        .iter()
        .any(|g| (g.name.as_str(), g.source.as_deref()) == ("read", Some("counter"))));

    // An async fn is timed from its first poll to its completion: the second
    // between creating the future and polling it is not counted, the pause
    // inside it is.
    let future = fetch(21, Duration::from_millis(100));
    std::thread::sleep(Duration::from_millis(1000));
    let polled = Instant::now();
    assert_eq!(block_on(future), Ok(42));
    let whole = polled.elapsed().as_secs_f64();
    assert_eq!(block_on(fetch(0, Duration::ZERO)), Err("zero".to_owned()));
    assert_eq!(block_on(async_count("same")), "same");
    let got = worker.receive(3, DEADLINE);
    assert_eq!(got.len(), 3, "{got:?}");
    // Levels travel in frames of their own, so only the order within a level
    // is kept.
    let fetches: Vec<_> = got.iter().filter(|g| g.name == "fetch").collect();
    assert_eq!(fetches.len(), 2, "{got:?}");
    assert!(fetches.iter().all(|g| g.kind == Kind::Timer));
    assert!(fetches[0].value >= 0.100, "the pause is timed: {got:?}");
    assert!(fetches[0].value <= whole, "creation is not timed: {got:?}");
    assert!(got
        .iter()
        .any(|g| (g.kind, g.name.as_str()) == (Kind::Counter, "async.calls")));
}

/// A future that is ready once a background thread has slept.
struct Sleep(Option<Duration>, Arc<AtomicBool>);

impl Sleep {
    fn new(d: Duration) -> Sleep {
        Sleep(Some(d), Arc::default())
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(d) = self.0.take() {
            let (done, waker) = (Arc::clone(&self.1), cx.waker().clone());
            std::thread::spawn(move || {
                std::thread::sleep(d);
                done.store(true, Ordering::Release);
                waker.wake();
            });
        }
        if self.1.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
