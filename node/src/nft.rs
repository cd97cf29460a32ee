//! A long-lived `nft -i` session for the agent's rule writes. Each write
//! is sent as one line, which nft runs as one transaction, and the session
//! keeps nft's cache of the table between writes: a write of a few rules
//! into a table of thousands of chains costs a few milliseconds, where a
//! fresh `nft -f` would first list them all (and a removal, every rule).
//!
//! nft reports a failed command on stderr as an `Error:` line, the input
//! echoed and a caret line. After each write the session sends a line nft
//! cannot parse, a numbered marker: its error ends the write's output, and
//! any earlier `Error:` is the write's.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin};

/// How long one write may take before the session is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Output lines kept of a write, and characters of each (a failed write's
/// input is echoed whole).
const KEPT_LINES: usize = 6;
const KEPT_CHARS: usize = 400;

/// An `nft -i` process, started on first use and again after it fails.
#[derive(Default)]
pub(crate) struct Nft {
    session: Option<Session>,
    writes: u64,
}

struct Session {
    child: Child,
    stdin: ChildStdin,
    stderr: Lines<BufReader<ChildStderr>>,
}

/// `script` (nft commands, a line each, blocks spanning lines) as one
/// line: statements separated by `;`.
fn one_line(script: &str) -> String {
    let mut line = String::with_capacity(script.len() + script.len() / 8);
    for l in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !line.is_empty() {
            line.push_str(" ; ");
        }
        line.push_str(l);
    }
    line
}

/// What a write's output says: `Ok` when the only error is the marker's.
fn verdict(errors: usize, kept: &[String]) -> Result<(), String> {
    if errors <= 1 {
        return Ok(());
    }
    Err(kept
        .iter()
        .take(KEPT_LINES.min(kept.len().saturating_sub(1)).max(1))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n"))
}

impl Session {
    fn start() -> Result<Self, String> {
        let mut child = tokio::process::Command::new("nft")
            .arg("-i")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("running nft: {e}"))?;
        let (Some(stdin), Some(stderr)) = (child.stdin.take(), child.stderr.take()) else {
            return Err("nft without pipes".to_string());
        };
        Ok(Self {
            child,
            stdin,
            stderr: BufReader::new(stderr).lines(),
        })
    }

    /// Runs `line`, then `mark`; the I/O error if the session broke, else
    /// nft's verdict on `line`.
    async fn run(&mut self, line: &str, mark: &str) -> std::io::Result<Result<(), String>> {
        let mut input = String::with_capacity(line.len() + mark.len() + 2);
        input.push_str(line);
        input.push('\n');
        input.push_str(mark);
        input.push('\n');
        self.stdin.write_all(input.as_bytes()).await?;
        self.stdin.flush().await?;
        let (mut errors, mut kept) = (0, Vec::new());
        loop {
            let Some(l) = self.stderr.next_line().await? else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "nft exited",
                ));
            };
            if l == mark {
                // The marker's caret line.
                self.stderr.next_line().await?;
                return Ok(verdict(errors, &kept));
            }
            if l.starts_with("Error:") {
                errors += 1;
            }
            if kept.len() < KEPT_LINES * 2 {
                kept.push(l.chars().take(KEPT_CHARS).collect());
            }
        }
    }
}

impl Nft {
    /// Runs `script` as one transaction.
    pub(crate) async fn apply(&mut self, script: &str) -> Result<(), String> {
        let session = match &mut self.session {
            Some(s) => s,
            None => self.session.insert(Session::start()?),
        };
        self.writes += 1;
        let mark = format!("shoal-sync-{}", self.writes);
        let line = one_line(script);
        match tokio::time::timeout(WRITE_TIMEOUT, session.run(&line, &mark)).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(e)) => {
                self.stop().await;
                Err(format!("nft: {e}"))
            }
            Err(_) => {
                self.stop().await;
                Err(format!("nft did not answer in {WRITE_TIMEOUT:?}"))
            }
        }
    }

    async fn stop(&mut self) {
        if let Some(mut s) = self.session.take() {
            let _ = s.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_become_one_line_of_statements() {
        let script = "add table ip t\ntable ip t {\n  chain c {\n    type nat hook output priority -100; policy accept;\n    jump d\n  }\n}\n\nadd element ip t s { 1.2.3.4 }\n";
        assert_eq!(
            one_line(script),
            "add table ip t ; table ip t { ; chain c { ; type nat hook output priority -100; policy accept; ; jump d ; } ; } ; add element ip t s { 1.2.3.4 }"
        );
    }

    #[test]
    fn only_the_markers_error_means_success() {
        let marker = ["Error: syntax error, unexpected newline, expecting string".to_string()];
        assert_eq!(verdict(1, &marker), Ok(()));
        let failed = [
            "Error: No such file or directory".to_string(),
            "add element ip nosuch x { 1.2.3.4 }".to_string(),
            "               ^^^^^^".to_string(),
            marker[0].clone(),
        ];
        let e = verdict(2, &failed).unwrap_err();
        assert!(
            e.starts_with("Error: No such file or directory\nadd element"),
            "{e}"
        );
        assert!(!e.contains("syntax error"), "{e}");
    }
}
