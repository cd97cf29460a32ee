//! A WASI command that prints a numbered line every second, forever.
//! `GREETING` in the environment replaces the default text.

use std::io::Write;
use std::time::Duration;

fn main() {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello from a wasm pod".to_string());
    let mut n = 0u64;
    loop {
        n += 1;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{greeting} #{n}");
        let _ = out.flush();
        drop(out);
        std::thread::sleep(Duration::from_secs(1));
    }
}
