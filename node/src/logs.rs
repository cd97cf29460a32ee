//! Per-container log files: one line per guest line, prefixed with an
//! RFC 3339 timestamp and the stream name, rotated by size as the kubelet
//! does (`containerLogMaxSize`, `containerLogMaxFiles`).
//!
//! Layout under the pod's directory: `logs/<container>/current.log` for the
//! running instance (rotated to `current.log.1` … `.N-1`, newest first) and
//! `previous.log` for the instance before the last restart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use shoal_runtime_wasm::OutputSink;

/// When a container's log file is rotated and how many files are kept.
#[derive(Debug, Clone, Copy)]
pub struct LogRotation {
    /// Size at which the current file is rotated.
    pub max_bytes: u64,
    /// Files kept per container instance, the current one included.
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

/// The log of one container instance, shared by its stdout and stderr.
pub struct ContainerLog {
    path: PathBuf,
    rotation: LogRotation,
    file: Mutex<(std::fs::File, u64)>,
}

impl ContainerLog {
    /// Opens (appending) the current log file at `path`.
    pub fn open(path: &Path, rotation: LogRotation) -> std::io::Result<Arc<Self>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = append(path)?;
        let size = file.metadata()?.len();
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            rotation,
            file: Mutex::new((file, size)),
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

    fn write_record(&self, stream: &str, text: &[u8]) {
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
        let mut guard = self.file.lock().expect("log lock");
        let (file, size) = &mut *guard;
        if file.write_all(&out).is_ok() {
            *size += out.len() as u64;
        }
        if *size >= self.rotation.max_bytes
            && let Ok(fresh) = self.rotate()
        {
            *file = fresh;
            *size = 0;
        }
    }

    /// Shifts `current.log.K` to `.K+1` (dropping the oldest), renames the
    /// current file to `.1` and opens a new current file.
    fn rotate(&self) -> std::io::Result<std::fs::File> {
        let keep = self.rotation.max_files.max(1) - 1;
        let numbered = |k: u32| suffixed(&self.path, &k.to_string());
        if keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(keep));
            for k in (1..keep).rev() {
                let _ = std::fs::rename(numbered(k), numbered(k + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        append(&self.path)
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
        let log = ContainerLog::open(&path, rotation).unwrap();
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
}
