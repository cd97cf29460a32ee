//! shoal's own log: to stderr, or to a file rotated by size; and no line
//! repeated without bound. Each place in the code that logs may write a
//! few lines in a window of time; past that its lines are counted, and one
//! line says how many were held back. A failure that repeats in a tight
//! loop therefore costs a few lines a window, not a disk.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::{Event, Metadata};
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::prelude::*;

/// The target of the lines that report held-back repeats.
const SUMMARY_TARGET: &str = "shoal::log";

/// Where the log goes and how it is bounded.
pub struct LogConfig {
    /// A file instead of stderr.
    pub file: Option<PathBuf>,
    /// Rotation of that file.
    pub rotation: shoal_node::logs::LogRotation,
    /// Lines one place may log per `window`.
    pub burst: u32,
    /// The window repeats are counted in.
    pub window: Duration,
}

/// Installs the global subscriber. `SHOAL_LOG` sets the levels (an
/// `EnvFilter` directive), `warn,shoal=info` by default.
pub fn init(config: LogConfig) -> std::io::Result<()> {
    let levels = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
        .unwrap_or_else(|_| "warn,shoal=info".into());
    let repeats = Repeats::new(config.burst, config.window);
    repeats.report_every(config.window);
    let layer = tracing_subscriber::fmt::layer();
    let filter = tracing_subscriber::filter::FilterExt::and(levels, repeats);
    match config.file {
        Some(path) => {
            let file = shoal_node::logs::RotatingFile::create(&path, config.rotation)?;
            let layer = layer
                .with_ansi(false)
                .with_writer(Mutex::new(FileWriter(file)))
                .with_filter(filter);
            tracing_subscriber::registry().with(layer).init();
        }
        None => {
            let layer = layer
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .with_filter(filter);
            tracing_subscriber::registry().with(layer).init();
        }
    }
    Ok(())
}

/// The log file as an `io::Write`.
struct FileWriter(shoal_node::logs::RotatingFile);

impl std::io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Holds back repeats: per callsite, `burst` lines a window.
#[derive(Clone)]
pub struct Repeats {
    burst: u32,
    window: Duration,
    seen: Arc<Mutex<HashMap<Identifier, Seen>>>,
}

struct Seen {
    meta: &'static Metadata<'static>,
    since: Instant,
    count: u32,
    held: u64,
}

impl Repeats {
    /// A filter letting `burst` lines per callsite through per `window`.
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            seen: Arc::default(),
        }
    }

    /// Whether an event of `meta` at `now` is written.
    fn admit(&self, meta: &'static Metadata<'static>, now: Instant) -> bool {
        if meta.target() == SUMMARY_TARGET {
            return true;
        }
        let mut seen = self.seen.lock().expect("repeats lock");
        let s = seen.entry(meta.callsite()).or_insert(Seen {
            meta,
            since: now,
            count: 0,
            held: 0,
        });
        if now.duration_since(s.since) >= self.window {
            s.since = now;
            s.count = 0;
        }
        s.count += 1;
        if s.count <= self.burst {
            true
        } else {
            s.held += 1;
            false
        }
    }

    /// The callsites that held lines back since the last call, with how
    /// many, cleared.
    fn take_held(&self) -> Vec<(&'static Metadata<'static>, u64)> {
        let mut seen = self.seen.lock().expect("repeats lock");
        let held = seen
            .values_mut()
            .filter(|s| s.held > 0)
            .map(|s| (s.meta, std::mem::take(&mut s.held)))
            .collect();
        seen.retain(|_, s| s.count > 0 && s.since.elapsed() < self.window * 2);
        held
    }

    /// Starts a thread that logs, every `period`, one line per callsite
    /// that held lines back.
    fn report_every(&self, period: Duration) {
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("shoal-log".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(period);
                    for (meta, n) in me.take_held() {
                        tracing::warn!(
                            target: SUMMARY_TARGET,
                            "{n} more lines like the last from {} ({}:{}) in the last {}s",
                            meta.target(),
                            meta.file().unwrap_or("?"),
                            meta.line().unwrap_or(0),
                            period.as_secs()
                        );
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!("shoal: cannot start the log thread: {e}");
        }
    }
}

impl<S> Filter<S> for Repeats {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn callsite_enabled(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        self.admit(event.metadata(), Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the events that reach it.
    struct Count(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, _: &Event<'_>, _: Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_callsite_gets_its_burst_per_window_and_the_rest_are_counted() {
        let written = Arc::new(AtomicUsize::new(0));
        let repeats = Repeats::new(3, Duration::from_secs(3600));
        let subscriber = tracing_subscriber::registry()
            .with(Count(written.clone()).with_filter(repeats.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1000 {
                tracing::warn!("accept: too many open files {i}");
            }
            tracing::warn!("another place logs on its own");
        });
        assert_eq!(written.load(Ordering::Relaxed), 4);
        let held = repeats.take_held();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].1, 997);
        assert!(
            repeats.take_held().is_empty(),
            "counts are cleared once reported"
        );
    }

    #[test]
    fn the_next_window_lets_a_burst_through_again() {
        let r = Repeats::new(2, Duration::from_secs(10));
        let written = Arc::new(AtomicUsize::new(0));
        let subscriber =
            tracing_subscriber::registry().with(Count(written.clone()).with_filter(r.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for round in 0..3 {
                for _ in 0..5 {
                    tracing::warn!("repeated");
                }
                // Age the window as if ten seconds went by.
                for s in r.seen.lock().unwrap().values_mut() {
                    s.since -= Duration::from_secs(10 + round);
                }
            }
        });
        assert_eq!(written.load(Ordering::Relaxed), 6);
    }
}
