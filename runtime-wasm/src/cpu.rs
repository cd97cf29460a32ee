//! CPU control by epoch interruption: every engine tick a running guest
//! yields to the executor, and a guest with a CPU limit then sleeps long
//! enough that it runs for its share of a core only.

use std::time::{Duration, Instant};

use wasmtime::{Store, UpdateDeadline};

/// Installs the yield-and-throttle callback for a guest limited to
/// `millicores` (none: yield only).
pub(crate) fn govern<T: 'static>(store: &mut Store<T>, millicores: Option<u32>) {
    let Some(m) = millicores.filter(|m| *m < 1000) else {
        store.epoch_deadline_async_yield_and_update(1);
        return;
    };
    let share = f64::from(m.max(1)) / 1000.0;
    let mut resumed = Instant::now();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        let now = Instant::now();
        // The guest ran without interruption since it last resumed: pause it
        // so that running time is `share` of the wall time.
        let ran = now.saturating_duration_since(resumed);
        let pause = ran
            .mul_f64((1.0 - share) / share)
            .min(Duration::from_secs(1));
        resumed = now + pause;
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::time::sleep(pause)),
        ))
    });
}
