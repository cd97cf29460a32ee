//! Text and small utilities: env, echo, head, tail, wc, grep, sleep, test,
//! date, hostname.

use std::io::{BufRead, BufReader, Read};

use crate::files::flags;
use crate::{Io, fail};

pub fn env(args: &[String], io: &mut Io) -> i32 {
    if let Some(name) = args.first() {
        return match io.vars.get(name) {
            Some(v) => {
                let _ = writeln!(io.stdout, "{v}");
                0
            }
            None => 1,
        };
    }
    for (k, v) in io.vars {
        let _ = writeln!(io.stdout, "{k}={v}");
    }
    0
}

pub fn echo(args: &[String], io: &mut Io) -> i32 {
    let newline = args.first().is_none_or(|a| a != "-n");
    let words = if newline { args } else { &args[1..] };
    let _ = write!(io.stdout, "{}", words.join(" "));
    if newline {
        let _ = writeln!(io.stdout);
    }
    0
}

/// `-n N`, `-c N` (or `-nN`), with `+N` meaning "from the Nth".
fn count_arg(args: &[String], default_lines: u64) -> (bool, String, Vec<String>) {
    let mut bytes = false;
    let mut n = default_lines.to_string();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" | "-c" => {
                bytes = a == "-c";
                n = it.next().cloned().unwrap_or_default();
            }
            s if s.starts_with("-n") || s.starts_with("-c") => {
                bytes = s.starts_with("-c");
                n = s[2..].to_string();
            }
            _ => rest.push(a.clone()),
        }
    }
    (bytes, n, rest)
}

fn input<'a>(io: &'a mut Io, files: &[String]) -> Result<Box<dyn Read + 'a>, String> {
    match files.first().filter(|f| *f != "-") {
        Some(f) => std::fs::File::open(f)
            .map(|f| Box::new(f) as Box<dyn Read>)
            .map_err(|e| format!("{f}: {e}")),
        None => Ok(Box::new(&mut *io.stdin)),
    }
}

pub fn head(args: &[String], io: &mut Io) -> i32 {
    let (bytes, n, files) = count_arg(args, 10);
    let Ok(n) = n.parse::<u64>() else {
        return fail(io, "head", format!("invalid number '{n}'"));
    };
    let mut out = Vec::new();
    let read = input(io, &files).and_then(|r| {
        if bytes {
            r.take(n).read_to_end(&mut out).map_err(|e| e.to_string())?;
        } else {
            for l in BufReader::new(r).split(b'\n').take(n as usize) {
                out.extend(l.map_err(|e| e.to_string())?);
                out.push(b'\n');
            }
        }
        Ok(())
    });
    if let Err(e) = read {
        return fail(io, "head", e);
    }
    let _ = io.stdout.write_all(&out);
    0
}

pub fn tail(args: &[String], io: &mut Io) -> i32 {
    let (bytes, n, files) = count_arg(args, 10);
    let from_start = n.starts_with('+');
    let Ok(k) = n.trim_start_matches('+').parse::<usize>() else {
        return fail(io, "tail", format!("invalid number '{n}'"));
    };
    let mut all = Vec::new();
    if let Err(e) =
        input(io, &files).and_then(|mut r| r.read_to_end(&mut all).map_err(|e| e.to_string()))
    {
        return fail(io, "tail", e);
    }
    let start = if bytes {
        if from_start {
            k.saturating_sub(1).min(all.len())
        } else {
            all.len().saturating_sub(k)
        }
    } else {
        let ends: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        let lines = ends.len() + usize::from(all.last().is_some_and(|b| *b != b'\n'));
        let skip = if from_start {
            k.saturating_sub(1)
        } else {
            lines.saturating_sub(k)
        };
        if skip == 0 {
            0
        } else {
            ends.get(skip - 1).copied().unwrap_or(all.len())
        }
    };
    let _ = io.stdout.write_all(&all[start..]);
    0
}

pub fn wc(args: &[String], io: &mut Io) -> i32 {
    let (f, files) = flags(args);
    let mut all = Vec::new();
    if let Err(e) =
        input(io, &files).and_then(|mut r| r.read_to_end(&mut all).map_err(|e| e.to_string()))
    {
        return fail(io, "wc", e);
    }
    let lines = all.iter().filter(|b| **b == b'\n').count();
    let words = String::from_utf8_lossy(&all).split_whitespace().count();
    let counts: Vec<String> = match f.as_str() {
        "l" => vec![lines.to_string()],
        "w" => vec![words.to_string()],
        "c" => vec![all.len().to_string()],
        _ => vec![lines.to_string(), words.to_string(), all.len().to_string()],
    };
    let _ = writeln!(io.stdout, "{}", counts.join(" "));
    0
}

pub fn grep(args: &[String], io: &mut Io) -> i32 {
    let (f, mut rest) = flags(args);
    if rest.is_empty() {
        return fail(io, "grep", "usage: grep [-ivc] PATTERN [FILE]");
    }
    let pattern = rest.remove(0);
    let (ignore, invert, count) = (f.contains('i'), f.contains('v'), f.contains('c'));
    let needle = if ignore {
        pattern.to_lowercase()
    } else {
        pattern
    };
    let mut matched = Vec::new();
    let read = input(io, &rest).and_then(|r| {
        for l in BufReader::new(r).lines() {
            let l = l.map_err(|e| e.to_string())?;
            let hay = if ignore { l.to_lowercase() } else { l.clone() };
            if hay.contains(&needle) != invert {
                matched.push(l);
            }
        }
        Ok(())
    });
    if let Err(e) = read {
        return fail(io, "grep", e);
    }
    if count {
        let _ = writeln!(io.stdout, "{}", matched.len());
    } else {
        for l in &matched {
            let _ = writeln!(io.stdout, "{l}");
        }
    }
    i32::from(matched.is_empty())
}

pub fn sleep(args: &[String], io: &mut Io) -> i32 {
    let Some(secs) = args
        .first()
        .and_then(|s| s.trim_end_matches('s').parse::<f64>().ok())
    else {
        return fail(io, "sleep", "invalid time interval");
    };
    std::thread::sleep(std::time::Duration::from_secs_f64(secs.clamp(0.0, 1e9)));
    0
}

/// `test` and `[`: files, strings and integers.
pub fn test(args: &[String], io: &mut Io) -> i32 {
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    if a.last() == Some(&"]") {
        a.pop();
    }
    let (negate, a) = match a.split_first() {
        Some((&"!", rest)) => (true, rest.to_vec()),
        _ => (false, a),
    };
    let int = |s: &str| s.trim().parse::<i64>().ok();
    let truth = match a.as_slice() {
        [] => false,
        [s] => !s.is_empty(),
        ["-e", p] => std::fs::metadata(p).is_ok(),
        ["-f", p] => std::fs::metadata(p).is_ok_and(|m| m.is_file()),
        ["-d", p] => std::fs::metadata(p).is_ok_and(|m| m.is_dir()),
        ["-s", p] => std::fs::metadata(p).is_ok_and(|m| m.len() > 0),
        ["-z", s] => s.is_empty(),
        ["-n", s] => !s.is_empty(),
        [x, "=" | "==", y] => x == y,
        [x, "!=", y] => x != y,
        [x, op, y] => match (int(x), int(y)) {
            (Some(x), Some(y)) => match *op {
                "-eq" => x == y,
                "-ne" => x != y,
                "-lt" => x < y,
                "-le" => x <= y,
                "-gt" => x > y,
                "-ge" => x >= y,
                _ => return fail(io, "test", format!("unknown operator {op}")) + 1,
            },
            _ => return fail(io, "test", "integer expression expected") + 1,
        },
        _ => return fail(io, "test", "unsupported expression") + 1,
    };
    i32::from(truth == negate)
}

pub fn date(_: &[String], io: &mut Io) -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let _ = writeln!(
        io.stdout,
        "{} {} {:>2} {:02}:{:02}:{:02} UTC {year}",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    0
}

pub fn hostname(_: &[String], io: &mut Io) -> i32 {
    let _ = writeln!(
        io.stdout,
        "{}",
        io.vars.get("HOSTNAME").map_or("localhost", String::as_str)
    );
    0
}
