//! `wget`: an HTTP/1.1 GET over the pod's granted network (plain HTTP).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::{Io, fail};

struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse(url: &str) -> Result<Url, String> {
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if url.starts_with("https://") {
        return Err("https is not supported; use http://".into());
    } else if url.contains("://") {
        return Err(format!("unsupported scheme in {url}"));
    } else {
        url
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h.to_string(),
            p.parse().map_err(|_| format!("bad port in {url}"))?,
        ),
        _ => (authority.to_string(), 80),
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    Ok(Url {
        host: host.trim_matches(['[', ']']).to_string(),
        port,
        path: path.to_string(),
    })
}

pub fn main(args: &[String], io: &mut Io) -> i32 {
    let (mut quiet, mut output, mut timeout, mut url) =
        (false, None::<String>, 30u64, None::<String>);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-q" => quiet = true,
            "-O" => output = it.next().cloned(),
            "-T" => timeout = it.next().and_then(|t| t.parse().ok()).unwrap_or(timeout),
            "-qO" | "-qO-" => {
                quiet = true;
                output = if a == "-qO-" {
                    Some("-".into())
                } else {
                    it.next().cloned()
                };
            }
            s if s.starts_with("-O") => output = Some(s[2..].to_string()),
            s if s.starts_with('-') => {}
            s => url = Some(s.to_string()),
        }
    }
    let Some(mut url) = url else {
        return fail(io, "wget", "missing URL");
    };
    for _ in 0..5 {
        let u = match parse(&url) {
            Ok(u) => u,
            Err(e) => return fail(io, "wget", e),
        };
        if !quiet {
            let _ = writeln!(io.stderr, "Connecting to {}:{}", u.host, u.port);
        }
        match get(&u, timeout) {
            Ok(Answer::Redirect(to)) => {
                url = if to.starts_with('/') {
                    format!("http://{}:{}{to}", u.host, u.port)
                } else {
                    to
                };
            }
            Ok(Answer::Body(status, body)) => {
                if !(200..300).contains(&status.0) {
                    return fail(io, "wget", format!("server returned error: {}", status.1));
                }
                let name = output.clone().unwrap_or_else(|| {
                    let last = u
                        .path
                        .split('?')
                        .next()
                        .unwrap_or("")
                        .rsplit('/')
                        .next()
                        .unwrap_or("");
                    if last.is_empty() {
                        "index.html".into()
                    } else {
                        last.to_string()
                    }
                });
                if name == "-" {
                    let _ = io.stdout.write_all(&body);
                } else {
                    if let Err(e) = std::fs::write(&name, &body) {
                        return fail(io, "wget", format!("can't open '{name}': {e}"));
                    }
                    if !quiet {
                        let _ = writeln!(io.stderr, "saving to '{name}'");
                    }
                }
                return 0;
            }
            Err(e) => return fail(io, "wget", format!("can't connect to remote host: {e}")),
        }
    }
    fail(io, "wget", "too many redirections")
}

enum Answer {
    Redirect(String),
    Body((u16, String), Vec<u8>),
}

fn get(u: &Url, timeout: u64) -> std::io::Result<Answer> {
    let t = Duration::from_secs(timeout.max(1));
    let addr = (u.host.as_str(), u.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("bad address"))?;
    let mut s = TcpStream::connect_timeout(&addr, t)?;
    let _ = s.set_read_timeout(Some(t));
    let host = if u.port == 80 {
        u.host.clone()
    } else {
        format!("{}:{}", u.host, u.port)
    };
    write!(
        s,
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Wget\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        u.path
    )?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status_line = line.trim_end().to_string();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (mut chunked, mut length, mut location) = (false, None::<u64>, None);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
        match k.as_str() {
            "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            "content-length" => length = v.parse().ok(),
            "location" => location = Some(v),
            _ => {}
        }
    }
    if (300..400).contains(&code)
        && let Some(to) = location
    {
        return Ok(Answer::Redirect(to));
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk)?;
            body.extend(chunk);
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        r.take(n).read_to_end(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Answer::Body((code, status_line), body))
}
