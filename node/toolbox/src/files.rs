//! Files and directories: ls, cat, mkdir, rm, rmdir, touch, cp, mv, pwd.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::{Io, fail};

/// Single-letter flags (`-la` is `-l -a`) and the operands after them.
pub fn flags(args: &[String]) -> (String, Vec<String>) {
    let mut letters = String::new();
    let mut rest = Vec::new();
    let mut operands_only = false;
    for a in args {
        if operands_only || !a.starts_with('-') || a == "-" {
            rest.push(a.clone());
        } else if a == "--" {
            operands_only = true;
        } else {
            letters.push_str(a.trim_start_matches('-'));
        }
    }
    (letters, rest)
}

pub fn ls(args: &[String], io: &mut Io) -> i32 {
    let (f, mut paths) = flags(args);
    let (long, all) = (f.contains('l'), f.contains('a'));
    if paths.is_empty() {
        paths.push(".".into());
    }
    let many = paths.len() > 1;
    let mut code = 0;
    for (i, p) in paths.iter().enumerate() {
        let meta = match fs::metadata(p) {
            Ok(m) => m,
            Err(e) => {
                code = fail(io, "ls", format!("{p}: {e}"));
                continue;
            }
        };
        if !meta.is_dir() {
            line(io, p, &meta, long);
            continue;
        }
        if many {
            let _ = writeln!(io.stdout, "{}{p}:", if i > 0 { "\n" } else { "" });
        }
        let mut names: Vec<(String, Option<fs::Metadata>)> = match fs::read_dir(p) {
            Ok(rd) => rd
                .flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().ok(),
                    )
                })
                .filter(|(n, _)| all || !n.starts_with('.'))
                .collect(),
            Err(e) => {
                code = fail(io, "ls", format!("{p}: {e}"));
                continue;
            }
        };
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, meta) in names {
            match meta {
                Some(m) => line(io, &name, &m, long),
                None => {
                    let _ = writeln!(io.stdout, "{name}");
                }
            }
        }
    }
    code
}

fn line(io: &mut Io, name: &str, meta: &fs::Metadata, long: bool) {
    if !long {
        let _ = writeln!(io.stdout, "{name}");
        return;
    }
    let kind = if meta.is_dir() {
        'd'
    } else if meta.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    // WASI shows no owners or modes: the kind, size and name.
    let _ = writeln!(io.stdout, "{kind} {:>10} {name}", meta.len());
}

pub fn cat(args: &[String], io: &mut Io) -> i32 {
    let (_, files) = flags(args);
    if files.is_empty() {
        return copy_out(io, None);
    }
    let mut code = 0;
    for f in &files {
        if f == "-" {
            code |= copy_out(io, None);
            continue;
        }
        match fs::File::open(f) {
            Ok(mut file) => code |= copy_out(io, Some(&mut file)),
            Err(e) => code = fail(io, "cat", format!("{f}: {e}")),
        }
    }
    code
}

fn copy_out(io: &mut Io, file: Option<&mut fs::File>) -> i32 {
    let copied = match file {
        Some(f) => io::copy(f, io.stdout),
        None => io::copy(io.stdin, io.stdout),
    };
    match copied {
        Ok(_) => 0,
        Err(e) => fail(io, "cat", e),
    }
}

pub fn mkdir(args: &[String], io: &mut Io) -> i32 {
    let (f, dirs) = flags(args);
    let mut code = 0;
    for d in &dirs {
        let made = if f.contains('p') {
            fs::create_dir_all(d)
        } else {
            fs::create_dir(d)
        };
        if let Err(e) = made {
            code = fail(io, "mkdir", format!("cannot create directory '{d}': {e}"));
        }
    }
    code
}

pub fn rm(args: &[String], io: &mut Io) -> i32 {
    let (f, paths) = flags(args);
    let (recursive, force) = (f.contains('r') || f.contains('R'), f.contains('f'));
    let mut code = 0;
    for p in &paths {
        let gone = match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() && recursive => fs::remove_dir_all(p),
            Ok(m) if m.is_dir() => Err(io::Error::other("is a directory")),
            Ok(_) => fs::remove_file(p),
            Err(_) if force => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = gone {
            code = fail(io, "rm", format!("cannot remove '{p}': {e}"));
        }
    }
    code
}

pub fn rmdir(args: &[String], io: &mut Io) -> i32 {
    let mut code = 0;
    for d in flags(args).1 {
        if let Err(e) = fs::remove_dir(&d) {
            code = fail(io, "rmdir", format!("failed to remove '{d}': {e}"));
        }
    }
    code
}

pub fn touch(args: &[String], io: &mut Io) -> i32 {
    let mut code = 0;
    for p in flags(args).1 {
        let opened = fs::OpenOptions::new().create(true).append(true).open(&p);
        if let Err(e) = opened {
            code = fail(io, "touch", format!("cannot touch '{p}': {e}"));
        }
    }
    code
}

/// The destination of `src` in `dst`: inside it when it is a directory.
fn target(src: &str, dst: &str) -> PathBuf {
    let d = Path::new(dst);
    if d.is_dir() {
        d.join(Path::new(src).file_name().unwrap_or_default())
    } else {
        d.to_path_buf()
    }
}

fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    if fs::metadata(src)?.is_dir() {
        fs::create_dir_all(dst)?;
        for e in fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(src, dst).map(drop)
    }
}

pub fn cp(args: &[String], io: &mut Io) -> i32 {
    let (f, mut paths) = flags(args);
    let Some(dst) = paths.pop().filter(|_| !paths.is_empty()) else {
        return fail(io, "cp", "missing file operand");
    };
    let mut code = 0;
    for src in &paths {
        let to = target(src, &dst);
        let is_dir = Path::new(src).is_dir();
        let done = if is_dir && !(f.contains('r') || f.contains('R') || f.contains('a')) {
            Err(io::Error::other("-r not specified; omitting directory"))
        } else {
            copy_tree(Path::new(src), &to)
        };
        if let Err(e) = done {
            code = fail(io, "cp", format!("'{src}': {e}"));
        }
    }
    code
}

pub fn mv(args: &[String], io: &mut Io) -> i32 {
    let (_, mut paths) = flags(args);
    let Some(dst) = paths.pop().filter(|_| !paths.is_empty()) else {
        return fail(io, "mv", "missing file operand");
    };
    let mut code = 0;
    for src in &paths {
        let to = target(src, &dst);
        // Across volumes a rename fails: copy, then remove.
        let moved = fs::rename(src, &to).or_else(|_| {
            copy_tree(Path::new(src), &to)?;
            if Path::new(src).is_dir() {
                fs::remove_dir_all(src)
            } else {
                fs::remove_file(src)
            }
        });
        if let Err(e) = moved {
            code = fail(io, "mv", format!("cannot move '{src}': {e}"));
        }
    }
    code
}

pub fn pwd(_: &[String], io: &mut Io) -> i32 {
    match std::env::current_dir() {
        Ok(d) => {
            let _ = writeln!(io.stdout, "{}", d.display());
            0
        }
        Err(e) => fail(io, "pwd", e),
    }
}
