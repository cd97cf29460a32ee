//! The guestbook's backend: a WASI command that keeps the book in memory and
//! serves it over plain HTTP/1.1 on its pod's address (`POD_IP`, from the
//! downward API) and `PORT`, through `wasi:sockets`.
//!
//! `GET /entries` answers every entry, a line each; `POST /entries` appends
//! the request body (one line, at most 1 KiB) and answers the count.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// Entries the book keeps; the oldest go first.
const MAX_ENTRIES: usize = 1000;

fn respond(mut stream: &TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn serve(stream: &TcpStream, book: &mut Vec<String>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        if let Some((name, _)) = header.split_once(':')
            && name.eq_ignore_ascii_case("transfer-encoding")
        {
            chunked = true;
        }
    }
    match (method, path) {
        ("GET", "/entries") => respond(stream, "200 OK", &book.concat()),
        ("POST", "/entries") if chunked => {
            respond(stream, "411 Length Required", "send a content-length\n")
        }
        ("POST", "/entries") if length <= 1024 => {
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return respond(stream, "400 Bad Request", "incomplete body\n");
            }
            let entry = String::from_utf8_lossy(&body).replace(['\r', '\n'], " ");
            if book.len() == MAX_ENTRIES {
                book.remove(0);
            }
            book.push(format!("{}\n", entry.trim()));
            respond(stream, "201 Created", &format!("{} entries\n", book.len()));
        }
        ("POST", "/entries") => respond(stream, "413 Payload Too Large", "at most 1 KiB\n"),
        _ => respond(stream, "404 Not Found", "GET or POST /entries\n"),
    }
}

fn main() {
    let ip = std::env::var("POD_IP").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = match TcpListener::bind(format!("{ip}:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("listening on {ip}:{port}: {e}");
            std::process::exit(1);
        }
    };
    println!("guestbook backend listening on {ip}:{port}");
    let mut book = Vec::new();
    for stream in listener.incoming() {
        match stream {
            Ok(s) => serve(&s, &mut book),
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}
