//! `tar`: create (`c`), extract (`x`) and list (`t`) ustar archives, with
//! GNU long names and PAX paths read — what `kubectl cp` sends and expects.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::{Io, fail};

const BLOCK: usize = 512;

struct Options {
    mode: char,
    file: Option<String>,
    dir: Option<String>,
    verbose: bool,
    operands: Vec<String>,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        mode: ' ',
        file: None,
        dir: None,
        verbose: false,
        operands: Vec::new(),
    };
    let mut it = args.iter().peekable();
    let mut first = true;
    while let Some(a) = it.next() {
        let bundle = if a.starts_with("--") {
            match a.as_str() {
                "--directory" => {
                    o.dir = it.next().cloned();
                }
                s if s.starts_with("--directory=") => o.dir = Some(s[12..].to_string()),
                "--file" => o.file = it.next().cloned(),
                s if s.starts_with("--file=") => o.file = Some(s[7..].to_string()),
                "--extract" | "--get" => o.mode = 'x',
                "--create" => o.mode = 'c',
                "--list" => o.mode = 't',
                // Ownership, permissions and times are the sandbox's own.
                _ => {}
            }
            None
        } else if let Some(letters) = a.strip_prefix('-').filter(|l| !l.is_empty()) {
            Some(letters)
        } else if first {
            Some(a.as_str())
        } else {
            o.operands.push(a.clone());
            None
        };
        first = false;
        let Some(letters) = bundle else { continue };
        for c in letters.chars() {
            match c {
                'c' | 'x' | 't' => o.mode = c,
                'v' => o.verbose = true,
                'f' => {
                    o.file = Some(
                        it.next()
                            .cloned()
                            .ok_or("option requires an argument -- 'f'")?,
                    )
                }
                'C' => {
                    o.dir = Some(
                        it.next()
                            .cloned()
                            .ok_or("option requires an argument -- 'C'")?,
                    )
                }
                'z' | 'j' | 'J' => return Err("compressed archives are not supported".into()),
                _ => {}
            }
        }
    }
    if o.mode == ' ' {
        return Err("You must specify one of the '-ctx' options".into());
    }
    Ok(o)
}

pub fn main(args: &[String], io: &mut Io) -> i32 {
    let o = match options(args) {
        Ok(o) => o,
        Err(e) => return fail(io, "tar", e),
    };
    if let Some(d) = &o.dir
        && let Err(e) = std::env::set_current_dir(d)
    {
        return fail(io, "tar", format!("{d}: Cannot open: {e}"));
    }
    let done = match o.mode {
        'c' => create(&o, io),
        _ => read(&o, io),
    };
    match done {
        Ok(code) => code,
        Err(e) => fail(io, "tar", e),
    }
}

fn create(o: &Options, io: &mut Io) -> io::Result<i32> {
    let mut out: Box<dyn Write + '_> = match o.file.as_deref() {
        None | Some("-") => Box::new(&mut *io.stdout),
        Some(f) => Box::new(fs::File::create(f)?),
    };
    let mut code = 0;
    let mut notes = Vec::new();
    for p in &o.operands {
        let name = p.trim_start_matches('/');
        if name.len() != p.len() {
            notes.push("Removing leading `/' from member names".to_string());
        }
        if let Err(e) = add(&mut out, Path::new(p), name, o.verbose, &mut notes) {
            notes.push(format!("{p}: Cannot stat: {e}"));
            code = 2;
        }
    }
    out.write_all(&[0; 2 * BLOCK])?;
    out.flush()?;
    drop(out);
    notes.dedup();
    for n in notes {
        let _ = writeln!(io.stderr, "tar: {n}");
    }
    Ok(code)
}

fn add(
    out: &mut dyn Write,
    path: &Path,
    name: &str,
    verbose: bool,
    notes: &mut Vec<String>,
) -> io::Result<()> {
    let meta = fs::metadata(path)?;
    if verbose {
        notes.push(name.to_string());
    }
    if meta.is_dir() {
        let dir_name = format!("{}/", name.trim_end_matches('/'));
        header(out, &dir_name, b'5', 0, 0o755, mtime(&meta))?;
        let mut entries: Vec<_> = fs::read_dir(path)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let child = format!("{dir_name}{}", e.file_name().to_string_lossy());
            if let Err(err) = add(out, &e.path(), &child, verbose, notes) {
                notes.push(format!("{child}: {err}"));
            }
        }
        return Ok(());
    }
    let mut f = fs::File::open(path)?;
    header(out, name, b'0', meta.len(), 0o644, mtime(&meta))?;
    let copied = io::copy(&mut (&mut f).take(meta.len()), out)?;
    // A file that shrank while read is padded to the size announced.
    let short = meta.len() - copied;
    io::copy(&mut io::repeat(0).take(short), out)?;
    pad(out, meta.len())
}

fn mtime(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn pad(out: &mut dyn Write, size: u64) -> io::Result<()> {
    let rem = (size % BLOCK as u64) as usize;
    if rem != 0 {
        out.write_all(&vec![0; BLOCK - rem])?;
    }
    Ok(())
}

fn octal(field: &mut [u8], value: u64) {
    let s = format!("{value:0width$o}", width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
}

fn header(
    out: &mut dyn Write,
    name: &str,
    kind: u8,
    size: u64,
    mode: u64,
    mtime: u64,
) -> io::Result<()> {
    if name.len() > 100 {
        // A GNU long name: the name itself as the data of an 'L' entry.
        let mut long = name.as_bytes().to_vec();
        long.push(0);
        block(out, "././@LongLink", b'L', long.len() as u64, 0o644, 0)?;
        out.write_all(&long)?;
        pad(out, long.len() as u64)?;
    }
    block(out, name, kind, size, mode, mtime)
}

fn block(
    out: &mut dyn Write,
    name: &str,
    kind: u8,
    size: u64,
    mode: u64,
    mtime: u64,
) -> io::Result<()> {
    let mut h = [0u8; BLOCK];
    let n = name.as_bytes();
    let n = &n[..n.len().min(100)];
    h[..n.len()].copy_from_slice(n);
    octal(&mut h[100..108], mode);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.write_all(&h)
}

fn field(h: &[u8]) -> String {
    let end = h.iter().position(|b| *b == 0).unwrap_or(h.len());
    String::from_utf8_lossy(&h[..end]).into_owned()
}

fn number(h: &[u8]) -> io::Result<u64> {
    let s = field(h);
    let s = s.trim_matches(|c: char| c == ' ' || c == '\0');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8)
        .map_err(|_| io::Error::other(format!("invalid number in header: {s:?}")))
}

/// A member's name made relative and free of `..`, as GNU tar extracts.
fn safe(name: &str) -> Option<PathBuf> {
    let mut p = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(s) => p.push(s),
            Component::ParentDir => return None,
            _ => {}
        }
    }
    (!p.as_os_str().is_empty()).then_some(p)
}

fn read(o: &Options, io: &mut Io) -> io::Result<i32> {
    let mut input: Box<dyn Read + '_> = match o.file.as_deref() {
        None | Some("-") => Box::new(&mut *io.stdin),
        Some(f) => Box::new(fs::File::open(f)?),
    };
    let mut code = 0;
    let mut long_name: Option<String> = None;
    let mut h = [0u8; BLOCK];
    let mut listed = Vec::new();
    let mut notes = Vec::new();
    loop {
        if !fill(&mut input, &mut h)? || h.iter().all(|b| *b == 0) {
            break;
        }
        let size = number(&h[124..136])?;
        let kind = h[156];
        let data_blocks = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let mut name = field(&h[..100]);
        let prefix = field(&h[345..500]);
        if &h[257..262] == b"ustar" && !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        match kind {
            b'L' | b'x' => {
                let mut data = vec![0; size.min(1 << 20) as usize];
                input.read_exact(&mut data)?;
                io::copy(
                    &mut (&mut input).take(data_blocks - data.len() as u64),
                    &mut io::sink(),
                )?;
                long_name = if kind == b'L' {
                    Some(field(&data))
                } else {
                    pax_path(&data).or(long_name)
                };
                continue;
            }
            b'g' => {
                io::copy(&mut (&mut input).take(data_blocks), &mut io::sink())?;
                continue;
            }
            _ => {}
        }
        let name = long_name.take().unwrap_or(name);
        let mut data = (&mut input).take(size);
        if o.mode == 't' || o.verbose {
            listed.push(name.clone());
        }
        if o.mode == 'x'
            && !(o.operands.is_empty()
                || o.operands.iter().any(|w| {
                    name.trim_end_matches('/') == w.trim_end_matches('/')
                        || name.starts_with(&format!("{}/", w.trim_end_matches('/')))
                }))
        {
            io::copy(&mut data, &mut io::sink())?;
        } else if o.mode == 'x' {
            match safe(&name) {
                None => {
                    notes.push(format!("{name}: Member name contains '..'; skipped"));
                    code = 2;
                    io::copy(&mut data, &mut io::sink())?;
                }
                Some(path) => {
                    if let Err(e) = extract(kind, &path, &mut data) {
                        notes.push(format!("{name}: Cannot extract: {e}"));
                        code = 2;
                    }
                    io::copy(&mut data, &mut io::sink())?;
                }
            }
        } else {
            io::copy(&mut data, &mut io::sink())?;
        }
        io::copy(&mut (&mut input).take(data_blocks - size), &mut io::sink())?;
    }
    drop(input);
    for l in listed {
        let _ = writeln!(
            if o.mode == 't' {
                &mut *io.stdout
            } else {
                &mut *io.stderr
            },
            "{l}"
        );
    }
    for n in notes {
        let _ = writeln!(io.stderr, "tar: {n}");
    }
    Ok(code)
}

fn extract(kind: u8, path: &Path, data: &mut dyn Read) -> io::Result<()> {
    match kind {
        b'5' => fs::create_dir_all(path),
        b'0' | 0 | b'7' => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)?;
            }
            let mut f = fs::File::create(path)?;
            io::copy(data, &mut f).map(drop)
        }
        b'1' | b'2' => Err(io::Error::other(
            "links are not supported in a Wasm sandbox",
        )),
        other => Err(io::Error::other(format!(
            "unsupported entry type {:?}",
            other as char
        ))),
    }
}

/// The `path` record of a PAX extended header.
fn pax_path(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let mut rest: &str = &text;
    while !rest.is_empty() {
        let (len, _) = rest.split_once(' ')?;
        let n: usize = len.parse().ok()?;
        let record = rest.get(..n)?;
        let kv = record.split_once(' ')?.1.trim_end_matches('\n');
        if let Some(p) = kv.strip_prefix("path=") {
            return Some(p.to_string());
        }
        rest = rest.get(n..)?;
    }
    None
}

/// Reads one block; false at a clean end of the input.
fn fill(input: &mut dyn Read, h: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut got = 0;
    while got < BLOCK {
        match input.read(&mut h[got..])? {
            0 if got == 0 => return Ok(false),
            0 => return Err(io::Error::other("unexpected end of archive")),
            n => got += n,
        }
    }
    Ok(true)
}
