//! A WASI command that prints a numbered line every second, forever or
//! `COUNT` times.
//!
//! - `GREETING` replaces the default text.
//! - `SHOW_FILES` (comma-separated paths) prints each file's contents, or
//!   why it cannot be read, once at start.
//! - `WRITE_FILES` (comma-separated paths) tries to write each file once at
//!   start and prints the outcome.
//! - `CONNECT` (comma-separated `host:port`) opens a TCP connection to each
//!   once at start and prints the outcome.
//! - `ASK` (comma-separated `host:port/path`) sends an HTTP/1.0 `GET` of
//!   the path over a TCP connection to each once at start and prints the
//!   answer's status line, or the error.
//! - `FILL` (`path:bytes`) writes a file of that many bytes once at start
//!   and prints the outcome.
//! - `SHOW_CWD` set prints the working directory at start.
//! - `SHOW_ENV` (comma-separated names) prints `NAME=value` for each
//!   variable once at start.
//! - `COUNT` stops after that many lines, exiting with `EXIT_CODE` (0 by
//!   default): a run-to-completion task.
//! - `INTERVAL` sets the seconds between lines (1 by default): a large one
//!   makes an idle pod.
//! - `BUSY_MS` spends that many milliseconds of each 100 computing (a
//!   pod that uses CPU); `HOLD_MIB` allocates and keeps that many MiB.
//! - `UDP_ECHO` (`ip:port`) instead answers each UDP datagram sent there
//!   with `echo from <HOSTNAME>: ` and the datagram, forever.
//!
//! When the node offers its stop request (`/run/shoal` exists, for pods
//! annotated `shoal.dev/stop-file`), it looks ten times a second for the
//! file the node creates when it asks the guest to stop (`/run/shoal/stop`,
//! as SIGTERM asks a process), and then says so and exits 0; otherwise it
//! sleeps from one line to the next.

use std::io::Write;
use std::time::Duration;

/// The file the node creates when it asks this guest to stop.
const STOP: &str = "/run/shoal/stop";

fn list(var: &str) -> Vec<String> {
    std::env::var(var)
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Answers datagrams at `at` until the socket fails.
fn udp_echo(at: &str) {
    let socket = match std::net::UdpSocket::bind(at) {
        Ok(s) => s,
        Err(e) => {
            println!("udp echo on {at}: error: {e}");
            std::process::exit(1);
        }
    };
    println!("udp echo on {at}");
    let pod = std::env::var("HOSTNAME").unwrap_or_default();
    let mut buf = [0u8; 1500];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let mut answer = format!("echo from {pod}: ").into_bytes();
                answer.extend_from_slice(&buf[..n]);
                let _ = socket.send_to(&answer, from);
            }
            Err(e) => {
                println!("udp echo: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// The status line `host:port/path` answers a `GET` with.
fn ask(target: &str) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader};
    let (at, path) = target.split_once('/').unwrap_or((target, ""));
    let mut stream = std::net::TcpStream::connect(at)?;
    write!(stream, "GET /{path} HTTP/1.0\r\nhost: {at}\r\n\r\n")?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end().to_string())
}

fn main() {
    if let Ok(at) = std::env::var("UDP_ECHO") {
        return udp_echo(&at);
    }
    for path in list("SHOW_FILES") {
        match std::fs::read_to_string(&path) {
            Ok(text) => println!("read {path}: {}", text.trim_end()),
            Err(e) => println!("read {path}: error: {e}"),
        }
    }
    for path in list("WRITE_FILES") {
        match std::fs::write(&path, b"written by hello-cmd\n") {
            Ok(()) => println!("write {path}: ok"),
            Err(e) => println!("write {path}: error: {e}"),
        }
    }
    for target in list("CONNECT") {
        match std::net::TcpStream::connect(&target) {
            Ok(_) => println!("connect {target}: ok"),
            Err(e) => println!("connect {target}: error: {e}"),
        }
    }
    for target in list("ASK") {
        match ask(&target) {
            Ok(status) => println!("ask {target}: {status}"),
            Err(e) => println!("ask {target}: error: {e}"),
        }
    }
    if let Ok(fill) = std::env::var("FILL")
        && let Some((path, size)) = fill.rsplit_once(':')
    {
        let size: usize = size.parse().unwrap_or(0);
        match std::fs::write(path, vec![b'x'; size]) {
            Ok(()) => println!("fill {path}: ok"),
            Err(e) => println!("fill {path}: error: {e}"),
        }
    }
    for name in list("SHOW_ENV") {
        println!("{name}={}", std::env::var(&name).unwrap_or_default());
    }
    if std::env::var_os("SHOW_CWD").is_some() {
        match std::env::current_dir() {
            Ok(d) => println!("cwd: {}", d.display()),
            Err(e) => println!("cwd: error: {e}"),
        }
    }
    let greeting =
        std::env::var("GREETING").unwrap_or_else(|_| "hello from a wasm pod".to_string());
    let count: Option<u64> = std::env::var("COUNT").ok().and_then(|c| c.parse().ok());
    let exit_code: i32 = std::env::var("EXIT_CODE")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let interval: u64 = std::env::var("INTERVAL")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let busy = Duration::from_millis(
        std::env::var("BUSY_MS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0u64)
            .min(100),
    );
    let held: Vec<u8> = vec![
        1;
        std::env::var("HOLD_MIB")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0usize)
            << 20
    ];
    // The node offers the stop request only to pods that ask for it; the
    // others wake once a line.
    let stoppable = std::path::Path::new(STOP)
        .parent()
        .is_some_and(std::path::Path::is_dir);
    let tick = if stoppable || !busy.is_zero() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(interval)
    };
    let mut n = 0u64;
    loop {
        if count.is_some_and(|c| n >= c) {
            std::process::exit(exit_code);
        }
        n += 1;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{greeting} #{n}");
        let _ = out.flush();
        drop(out);
        let until = std::time::Instant::now() + Duration::from_secs(interval);
        while std::time::Instant::now() < until {
            if stoppable && std::path::Path::new(STOP).exists() {
                println!("asked to stop after {n} lines");
                std::process::exit(0);
            }
            let spin = std::time::Instant::now();
            let mut x = held.len() as u64;
            while spin.elapsed() < busy {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            std::thread::sleep(tick.saturating_sub(busy).min(left));
        }
    }
}
