//! `#[time_me]` on an `async fn` times the whole future, from its first poll
//! to its completion, not its creation.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

#[zibrato::time_me(level = "debug", name = "fetch")]
async fn fetch(id: u32) -> Result<u32, String> {
    Sleep::new(Duration::from_millis(20)).await;
    Ok(id * 2)
}

fn main() {
    println!("{:?}", block_on(fetch(21)));
}

/// A future that is ready once a background thread has slept.
struct Sleep(Option<Duration>, Arc<std::sync::atomic::AtomicBool>);

impl Sleep {
    fn new(d: Duration) -> Sleep {
        Sleep(Some(d), Arc::default())
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(d) = self.0.take() {
            let (done, waker) = (Arc::clone(&self.1), cx.waker().clone());
            std::thread::spawn(move || {
                std::thread::sleep(d);
                done.store(true, std::sync::atomic::Ordering::Release);
                waker.wake();
            });
        }
        if self.1.load(std::sync::atomic::Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The smallest executor: park until woken.
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
