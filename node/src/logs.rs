//! Per-container log files: one line per guest line, prefixed with an
//! RFC 3339 timestamp and the stream name, rotated by size as the kubelet
//! does (`containerLogMaxSize`, `containerLogMaxFiles`).
//!
//! Layout under the pod's directory: `logs/<container>/current.log` for the
//! running instance (rotated to `current.log.1` … `.N-1`, newest first) and
//! `previous.log` for the instance before the last restart.
//!
//! A node may run more containers than it may hold files open, so a log
//! holds its file open only while it is among the node's most recently
//! written ones ([`OpenLogs`]); a container that never writes holds no
//! descriptor at all.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use shoal_runtime_wasm::OutputSink;

/// When a log file is rotated and how many files are kept.
#[derive(Debug, Clone, Copy)]
pub struct LogRotation {
    /// Size at which the current file is rotated.
    pub max_bytes: u64,
    /// Files kept, the current one included.
    pub max_files: u32,
}

impl Default for LogRotation {
    /// The kubelet's defaults: 10 MiB, five files.
    fn default() -> Self {
        Self {
            max_bytes: 10 << 20,
            max_files: 5,
        }
    }
}

/// A file written by appending and rotated by size: `path` is the newest,
/// then `path.1` … `path.N-1`; the oldest is dropped. Its descriptor may be
/// closed at any time and is opened again on the next write.
pub struct RotatingFile {
    path: PathBuf,
    rotation: LogRotation,
    file: Option<(std::fs::File, u64)>,
}

impl RotatingFile {
    /// Creates `path` (and its directory) if needed, without keeping it open.
    pub fn create(path: &Path, rotation: LogRotation) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        append(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            rotation,
            file: None,
        })
    }

    /// Appends `bytes`, opening the file if it is closed and rotating it
    /// once it reaches its size.
    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let (file, size) = match &mut self.file {
            Some(open) => open,
            None => {
                let file = append(&self.path)?;
                let size = file.metadata()?.len();
                self.file.insert((file, size))
            }
        };
        file.write_all(bytes)?;
        *size += bytes.len() as u64;
        if *size >= self.rotation.max_bytes {
            self.file = None;
            self.rotate()?;
            self.file = Some((append(&self.path)?, 0));
        }
        Ok(())
    }

    /// Whether the file's descriptor is open.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Closes the descriptor; the next write opens it again.
    pub fn close(&mut self) {
        self.file = None;
    }

    /// Shifts `path.K` to `.K+1` (dropping the oldest) and renames the
    /// current file to `.1` (or removes it when only one file is kept).
    fn rotate(&self) -> std::io::Result<()> {
        let keep = self.rotation.max_files.max(1) - 1;
        let numbered = |k: u32| suffixed(&self.path, &k.to_string());
        if keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        let _ = std::fs::remove_file(numbered(keep));
        for k in (1..keep).rev() {
            let _ = std::fs::rename(numbered(k), numbered(k + 1));
        }
        std::fs::rename(&self.path, numbered(1))
    }
}

/// The node's budget of open container log files. Past it, the log that
/// opens its file closes another's (whichever the map yields first, which
/// is as good as least recently used for logs written in turn).
pub struct OpenLogs {
    max: usize,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Weak<ContainerLog>>>,
}

impl OpenLogs {
    /// A budget of `max` open files.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// How many log files are open now.
    pub fn open_files(&self) -> usize {
        self.open.lock().expect("open logs lock").len()
    }

    /// Notes that `log` opened its file; closes another's if over budget.
    fn opened(&self, log: &Arc<ContainerLog>) {
        let victim = {
            let mut open = self.open.lock().expect("open logs lock");
            open.insert(log.id, Arc::downgrade(log));
            if open.len() > self.max {
                let id = open.keys().copied().find(|k| *k != log.id);
                id.and_then(|id| open.remove(&id))
            } else {
                None
            }
        };
        if let Some(other) = victim.and_then(|w| w.upgrade()) {
            other.file.lock().expect("log lock").close();
        }
    }

    fn forget(&self, id: u64) {
        self.open.lock().expect("open logs lock").remove(&id);
    }
}

/// The log of one container instance, shared by its stdout and stderr.
pub struct ContainerLog {
    id: u64,
    budget: Arc<OpenLogs>,
    file: Mutex<RotatingFile>,
}

impl Drop for ContainerLog {
    fn drop(&mut self) {
        self.budget.forget(self.id);
    }
}

impl ContainerLog {
    /// Creates the current log file at `path`, to be appended to within
    /// the node's budget of open files.
    pub fn open(
        path: &Path,
        rotation: LogRotation,
        budget: &Arc<OpenLogs>,
    ) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            id: budget.next_id.fetch_add(1, Ordering::Relaxed),
            budget: budget.clone(),
            file: Mutex::new(RotatingFile::create(path, rotation)?),
        }))
    }

    /// A sink for one of the container's streams.
    pub fn stream(self: &Arc<Self>, stream: &'static str) -> LogStream {
        LogStream {
            log: self.clone(),
            stream,
            partial: Mutex::new(Vec::new()),
        }
    }

    fn write_record(self: &Arc<Self>, stream: &str, text: &[u8]) {
        let ts = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            .to_string();
        let mut out = Vec::with_capacity(text.len() + 48);
        out.extend_from_slice(ts.as_bytes());
        out.push(b' ');
        out.extend_from_slice(stream.as_bytes());
        out.push(b' ');
        out.extend_from_slice(text);
        if !text.ends_with(b"\n") {
            out.push(b'\n');
        }
        let opened = {
            let mut file = self.file.lock().expect("log lock");
            let was_open = file.is_open();
            if let Err(e) = file.write_all(&out) {
                tracing::debug!("writing a container log: {e}");
            }
            !was_open && file.is_open()
        };
        if opened {
            self.budget.opened(self);
        }
    }
}

fn append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

/// One stream (stdout or stderr) of a container, written line by line.
pub struct LogStream {
    log: Arc<ContainerLog>,
    stream: &'static str,
    partial: Mutex<Vec<u8>>,
}

/// A line longer than this is written in pieces, as the kubelet splits
/// long lines.
const MAX_LINE: usize = 16 * 1024;

impl OutputSink for LogStream {
    fn write(&self, bytes: &[u8]) {
        let mut partial = self.partial.lock().expect("log line lock");
        partial.extend_from_slice(bytes);
        while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=pos).collect();
            self.log.write_record(self.stream, &line);
        }
        if partial.len() > MAX_LINE {
            let piece = std::mem::take(&mut *partial);
            self.log.write_record(self.stream, &piece);
        }
    }
}

/// The log directory of a container of a pod.
fn container_dir(root: &Path, uid: &str, container: &str) -> PathBuf {
    root.join("pods").join(uid).join("logs").join(container)
}

/// The log file of a container's current (or previous) instance.
pub fn log_path(root: &Path, uid: &str, container: &str, previous: bool) -> PathBuf {
    container_dir(root, uid, container).join(if previous {
        "previous.log"
    } else {
        "current.log"
    })
}

/// Makes the current instance's log the previous one, before a restart.
pub fn retire(root: &Path, uid: &str, container: &str) {
    let dir = container_dir(root, uid, container);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut current = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("previous.log") {
            let _ = std::fs::remove_file(e.path());
        } else if let Some(rest) = name.strip_prefix("current.log") {
            current.push(rest.to_string());
        }
    }
    for rest in current {
        let _ = std::fs::rename(
            dir.join(format!("current.log{rest}")),
            dir.join(format!("previous.log{rest}")),
        );
    }
}

/// Splits a stored log line into its timestamp and the guest's text.
pub fn split_line(line: &str) -> (&str, &str) {
    let (ts, rest) = line.split_once(' ').unwrap_or(("", line));
    let text = rest.split_once(' ').map_or(rest, |(_, t)| t);
    (ts, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let root = std::env::temp_dir().join(format!("shoal-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let path = log_path(&root, "uid", "main", false);
        let rotation = LogRotation {
            max_bytes: 1000,
            max_files: 3,
        };
        let log = ContainerLog::open(&path, rotation, &OpenLogs::new(8)).unwrap();
        let (out, err) = (log.stream("stdout"), log.stream("stderr"));
        for i in 0..200 {
            out.write(format!("line {i}\n").as_bytes());
            err.write(b"half a ");
            err.write(b"line\n");
        }
        let dir = path.parent().unwrap();
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["current.log", "current.log.1", "current.log.2"]);
        for f in &files {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(text.len() < 1100, "{f} is {} bytes", text.len());
            assert!(text.lines().all(|l| {
                let (ts, t) = split_line(l);
                ts.ends_with('Z') && (t.starts_with("line ") || t == "half a line")
            }));
        }
        let newest = std::fs::read_to_string(suffixed(&path, "1")).unwrap()
            + &std::fs::read_to_string(&path).unwrap();
        assert!(newest.contains("line 199"), "{newest}");
        retire(&root, "uid", "main");
        assert!(log_path(&root, "uid", "main", true).exists());
        assert!(!path.exists());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn logs_beyond_the_budget_close_and_reopen_their_files() {
        let root = std::env::temp_dir().join(format!("shoal-logs-budget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let budget = OpenLogs::new(2);
        let logs: Vec<_> = (0..5)
            .map(|i| {
                let path = log_path(&root, &format!("uid{i}"), "main", false);
                ContainerLog::open(&path, LogRotation::default(), &budget).unwrap()
            })
            .collect();
        assert_eq!(
            budget.open_files(),
            0,
            "a log that never wrote holds no file"
        );
        let streams: Vec<_> = logs.iter().map(|l| l.stream("stdout")).collect();
        for round in 0..10 {
            for s in &streams {
                s.write(format!("round {round}\n").as_bytes());
                assert!(budget.open_files() <= 2);
            }
        }
        let open = logs
            .iter()
            .filter(|l| l.file.lock().unwrap().is_open())
            .count();
        assert!(open <= 2, "{open} files open");
        for i in 0..5 {
            let text = std::fs::read_to_string(log_path(&root, &format!("uid{i}"), "main", false))
                .unwrap();
            let rounds: Vec<&str> = text.lines().map(|l| split_line(l).1).collect();
            let want: Vec<String> = (0..10).map(|r| format!("round {r}")).collect();
            assert_eq!(rounds, want);
        }
        drop(streams);
        drop(logs);
        assert_eq!(budget.open_files(), 0, "dropped logs leave the budget");
        std::fs::remove_dir_all(root).unwrap();
    }
}
