//! Per-container log files: one line per guest line, prefixed with an
//! RFC 3339 timestamp and the stream name.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use shoal_runtime_wasm::OutputSink;

/// Appends a container's output to its log file.
pub struct LogSink {
    file: Mutex<(std::fs::File, Vec<u8>)>,
    stream: &'static str,
}

impl LogSink {
    /// A sink appending to `path` and tagging lines with `stream`.
    pub fn open(path: &Path, stream: &'static str) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            file: Mutex::new((file, Vec::new())),
            stream,
        })
    }
}

impl OutputSink for LogSink {
    fn write(&self, bytes: &[u8]) {
        let mut guard = self.file.lock().expect("log lock");
        let (file, partial) = &mut *guard;
        partial.extend_from_slice(bytes);
        while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=pos).collect();
            let ts = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                .to_string();
            let mut out = Vec::with_capacity(line.len() + 40);
            out.extend_from_slice(ts.as_bytes());
            out.push(b' ');
            out.extend_from_slice(self.stream.as_bytes());
            out.push(b' ');
            out.extend_from_slice(&line);
            let _ = file.write_all(&out);
        }
        if partial.len() > 16 * 1024 {
            let ts = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                .to_string();
            let _ = write!(file, "{ts} {} ", self.stream);
            let _ = file.write_all(partial);
            let _ = file.write_all(b"\n");
            partial.clear();
        }
    }
}

/// The log file of a container of a pod.
pub fn log_path(root: &Path, uid: &str, container: &str, previous: bool) -> PathBuf {
    root.join("pods").join(uid).join(if previous {
        format!("{container}.log.1")
    } else {
        format!("{container}.log")
    })
}

/// Splits a stored log line into its timestamp and the guest's text.
pub fn split_line(line: &str) -> (&str, &str) {
    let (ts, rest) = line.split_once(' ').unwrap_or(("", line));
    let text = rest.split_once(' ').map_or(rest, |(_, t)| t);
    (ts, text)
}
