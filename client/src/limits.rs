//! The numbers the crate's [promises](crate#promises) are stated in: where
//! recording stops being free of allocations and locks, how much a
//! measurement takes in the queue, how long holding goes on once
//! subscriptions arrive, and how many labels of what length are sent (the
//! [label rules](zibrato_backend_api::labels)' own limits). They are fixed; what can be set is on the
//! [`Builder`](crate::Builder).
//!
//! ```
//! use std::time::Duration;
//! use zibrato::limits::*;
//!
//! assert_eq!(INLINE_LINE_BYTES, 110);
//! assert_eq!(SLOT_BYTES, 128);
//! assert_eq!(MAX_STRIPES, 4);
//! assert_eq!(CLIENTS_PER_THREAD, 4);
//! assert_eq!(CACHED_LEVELS, 8);
//! assert_eq!(CACHED_LEVEL_BYTES, 30);
//! assert_eq!(SUBSCRIPTIONS_SETTLE, Duration::from_millis(50));
//! assert_eq!(MAX_LABELS, 16);
//! assert_eq!(MAX_KEY_BYTES, 64);
//! assert_eq!(MAX_VALUE_BYTES, 255);
//! assert_eq!(COUNTER_STRIPES, 4);
//! ```

pub use crate::handles::COUNTER_STRIPES;
pub use crate::io_thread::SUBSCRIPTIONS_SETTLE;
pub use crate::line::{INLINE_LINE_BYTES, SLOT_BYTES};
pub use crate::local::{CACHED_LEVELS, CACHED_LEVEL_BYTES, CLIENTS_PER_THREAD};
pub use crate::queue::MAX_STRIPES;
pub use zibrato_backend_api::labels::{MAX_KEY_BYTES, MAX_LABELS, MAX_VALUE_BYTES};
