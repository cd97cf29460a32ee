//! `sh`: a small POSIX-style shell. Pipelines (`|`), lists (`;`, `&&`,
//! `||`), redirections (`<`, `>`, `>>`, `2>`, `2>&1`, `>&2`), quoting,
//! `$VAR`/`${VAR}`/`$?` expansion, `*` globs, assignments, and the built-ins
//! `cd`, `export`, `unset`, `exit`, `:`. Every command is an applet of this
//! toolbox; a pipeline's stages run one after another in this instance, each
//! stage's output buffered as the next one's input.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Cursor, IsTerminal, Read, Write};

use crate::{Io, applet, fail};

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    /// A literal from quotes: no globbing, no splitting.
    Quoted(String),
    Var {
        name: String,
        quoted: bool,
    },
}

type Word = Vec<Part>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(Word),
    Op(&'static str),
}

const OPS: [&str; 13] = [
    "2>&1", ">&2", "1>&2", "2>>", "&&", "||", ">>", "2>", "|", ";", ">", "<", "&",
];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut word: Word = Vec::new();
    let mut lit = String::new();
    let mut in_word = false;
    let mut i = 0;
    let flush_lit = |word: &mut Word, lit: &mut String| {
        if !lit.is_empty() {
            word.push(Part::Lit(std::mem::take(lit)));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if !in_word && c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '\n' {
            if in_word {
                flush_lit(&mut word, &mut lit);
                toks.push(Tok::Word(std::mem::take(&mut word)));
                in_word = false;
            }
            toks.push(Tok::Op(";"));
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            if in_word {
                flush_lit(&mut word, &mut lit);
                toks.push(Tok::Word(std::mem::take(&mut word)));
                in_word = false;
            }
            i += 1;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 4)].iter().collect();
        // "2>" and "1>&2" are operators only at the start of a word.
        if let Some(op) = OPS
            .iter()
            .find(|op| rest.starts_with(**op) && (!in_word || !op.starts_with(['1', '2'])))
        {
            if in_word {
                flush_lit(&mut word, &mut lit);
                toks.push(Tok::Word(std::mem::take(&mut word)));
                in_word = false;
            }
            toks.push(Tok::Op(op));
            i += op.chars().count();
            continue;
        }
        in_word = true;
        match c {
            '\'' => {
                flush_lit(&mut word, &mut lit);
                let end = chars[i + 1..]
                    .iter()
                    .position(|c| *c == '\'')
                    .ok_or("unterminated quoted string")?;
                word.push(Part::Quoted(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '"' => {
                flush_lit(&mut word, &mut lit);
                i += 1;
                let mut q = String::new();
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err("unterminated quoted string".into());
                    };
                    match c {
                        '"' => {
                            i += 1;
                            break;
                        }
                        '\\' if matches!(chars.get(i + 1), Some('"' | '\\' | '$' | '`')) => {
                            q.push(chars[i + 1]);
                            i += 2;
                        }
                        '$' => {
                            let (name, len) = var_name(&chars[i + 1..]);
                            if name.is_empty() {
                                q.push('$');
                                i += 1;
                            } else {
                                word.push(Part::Quoted(std::mem::take(&mut q)));
                                word.push(Part::Var { name, quoted: true });
                                i += 1 + len;
                            }
                        }
                        c => {
                            q.push(c);
                            i += 1;
                        }
                    }
                }
                word.push(Part::Quoted(q));
            }
            '\\' => {
                flush_lit(&mut word, &mut lit);
                if let Some(&n) = chars.get(i + 1) {
                    if n != '\n' {
                        word.push(Part::Quoted(n.to_string()));
                    }
                }
                i += 2;
            }
            '$' => {
                let (name, len) = var_name(&chars[i + 1..]);
                if name.is_empty() {
                    lit.push('$');
                    i += 1;
                } else {
                    flush_lit(&mut word, &mut lit);
                    word.push(Part::Var {
                        name,
                        quoted: false,
                    });
                    i += 1 + len;
                }
            }
            c => {
                lit.push(c);
                i += 1;
            }
        }
    }
    if in_word {
        flush_lit(&mut word, &mut lit);
        toks.push(Tok::Word(word));
    }
    Ok(toks)
}

/// The variable named at the start of `s` (`NAME`, `{NAME}`, `?`) and the
/// characters it takes.
fn var_name(s: &[char]) -> (String, usize) {
    match s.first() {
        Some('{') => match s.iter().position(|c| *c == '}') {
            Some(end) => (s[1..end].iter().collect(), end + 1),
            None => (String::new(), 0),
        },
        Some(c) if matches!(c, '?' | '$' | '#' | '0'..='9') => (c.to_string(), 1),
        _ => {
            let n = s
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .count();
            (s[..n].iter().collect(), n)
        }
    }
}

#[derive(Debug, Default)]
struct Command {
    assigns: Vec<(String, Word)>,
    words: Vec<Word>,
    redirects: Vec<(&'static str, Option<Word>)>,
}

type Pipeline = Vec<Command>;

/// `first (op next)*`, then what separates it from the following one.
type AndOr = (Pipeline, Vec<(&'static str, Pipeline)>);

fn parse(toks: Vec<Tok>) -> Result<Vec<AndOr>, String> {
    let mut list: Vec<AndOr> = Vec::new();
    let mut pipeline: Pipeline = Vec::new();
    let mut cmd = Command::default();
    let mut pending: Option<&'static str> = None;
    let mut rest: Vec<(&'static str, Pipeline)> = Vec::new();
    let mut first: Option<Pipeline> = None;
    let mut it = toks.into_iter().peekable();
    let end_cmd = |cmd: &mut Command, pipeline: &mut Pipeline| -> Result<(), String> {
        let c = std::mem::take(cmd);
        if c.words.is_empty() && c.assigns.is_empty() && c.redirects.is_empty() {
            return Err("syntax error: missing command".into());
        }
        pipeline.push(c);
        Ok(())
    };
    while let Some(t) = it.next() {
        match t {
            Tok::Word(w) => {
                if cmd.words.is_empty()
                    && let [Part::Lit(l), ..] = w.as_slice()
                    && let Some((name, v)) = l.split_once('=')
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    let mut value = vec![Part::Lit(v.to_string())];
                    value.extend(w[1..].iter().cloned());
                    cmd.assigns.push((name.to_string(), value));
                } else {
                    cmd.words.push(w);
                }
            }
            Tok::Op(op @ (">" | ">>" | "<" | "2>" | "2>>")) => match it.next() {
                Some(Tok::Word(w)) => cmd.redirects.push((op, Some(w))),
                _ => return Err(format!("syntax error near unexpected token '{op}'")),
            },
            Tok::Op(op @ ("2>&1" | ">&2" | "1>&2")) => cmd.redirects.push((op, None)),
            Tok::Op("|") => end_cmd(&mut cmd, &mut pipeline)?,
            Tok::Op(op @ ("&&" | "||")) => {
                end_cmd(&mut cmd, &mut pipeline)?;
                let p = std::mem::take(&mut pipeline);
                match pending {
                    None => first = Some(p),
                    Some(prev) => rest.push((prev, p)),
                }
                pending = Some(op);
            }
            Tok::Op(_) => {
                // ";" and "&" (run in turn: there is no background here).
                let empty =
                    cmd.words.is_empty() && cmd.assigns.is_empty() && cmd.redirects.is_empty();
                if empty && pipeline.is_empty() && pending.is_none() {
                    continue;
                }
                end_cmd(&mut cmd, &mut pipeline)?;
                let p = std::mem::take(&mut pipeline);
                match pending.take() {
                    None => list.push((p, Vec::new())),
                    Some(prev) => {
                        rest.push((prev, p));
                        list.push((first.take().unwrap_or_default(), std::mem::take(&mut rest)));
                    }
                }
            }
        }
    }
    let empty = cmd.words.is_empty() && cmd.assigns.is_empty() && cmd.redirects.is_empty();
    if !(empty && pipeline.is_empty() && pending.is_none()) {
        end_cmd(&mut cmd, &mut pipeline)?;
        match pending.take() {
            None => list.push((pipeline, Vec::new())),
            Some(prev) => {
                rest.push((prev, pipeline));
                list.push((first.take().unwrap_or_default(), rest));
            }
        }
    }
    Ok(list)
}

/// What a command asks of the shell beyond its exit code.
enum Flow {
    Go,
    Exit(i32),
}

struct Shell {
    vars: BTreeMap<String, String>,
    last: i32,
}

impl Shell {
    fn value(&self, name: &str) -> String {
        match name {
            "?" => self.last.to_string(),
            "$" => "1".into(),
            "#" => "0".into(),
            "0" => "sh".into(),
            n => self.vars.get(n).cloned().unwrap_or_default(),
        }
    }

    /// A word's fields: unquoted variables split at blanks, unquoted `*` and
    /// `?` globbed.
    fn expand(&self, word: &Word) -> Vec<String> {
        let mut fields: Vec<(String, bool)> = vec![(String::new(), false)];
        let mut any_quoted = false;
        for p in word {
            match p {
                Part::Lit(s) => {
                    let last = fields.last_mut().expect("a field");
                    last.0.push_str(s);
                    last.1 |= s.contains(['*', '?']);
                }
                Part::Quoted(s) => {
                    any_quoted = true;
                    fields.last_mut().expect("a field").0.push_str(s);
                }
                Part::Var { name, quoted: true } => {
                    any_quoted = true;
                    fields
                        .last_mut()
                        .expect("a field")
                        .0
                        .push_str(&self.value(name));
                }
                Part::Var {
                    name,
                    quoted: false,
                } => {
                    let v = self.value(name);
                    let mut pieces = v.split_whitespace();
                    if let Some(p) = pieces.next() {
                        if v.starts_with(char::is_whitespace)
                            && !fields.last().expect("a field").0.is_empty()
                        {
                            fields.push((String::new(), false));
                        }
                        fields.last_mut().expect("a field").0.push_str(p);
                    }
                    for p in pieces {
                        fields.push((p.to_string(), false));
                    }
                    if v.ends_with(char::is_whitespace) && !v.trim().is_empty() {
                        fields.push((String::new(), false));
                    }
                }
            }
        }
        let mut out = Vec::new();
        let n = fields.len();
        for (i, (f, glob)) in fields.into_iter().enumerate() {
            if f.is_empty() && !(any_quoted && n == 1) && !(i + 1 == n && i == 0 && any_quoted) {
                continue;
            }
            if glob {
                let matched = glob_expand(&f);
                if !matched.is_empty() {
                    out.extend(matched);
                    continue;
                }
            }
            out.push(f);
        }
        out
    }

    fn run_script(&mut self, src: &str, io: &mut Io) -> Flow {
        let list = match lex(src).and_then(parse) {
            Ok(l) => l,
            Err(e) => {
                self.last = fail(io, "sh", e) + 1;
                return Flow::Go;
            }
        };
        for (first, rest) in list {
            if let Flow::Exit(c) = self.pipeline(&first, io) {
                return Flow::Exit(c);
            }
            for (op, p) in &rest {
                let run = if *op == "&&" {
                    self.last == 0
                } else {
                    self.last != 0
                };
                if run && let Flow::Exit(c) = self.pipeline(p, io) {
                    return Flow::Exit(c);
                }
            }
        }
        Flow::Go
    }

    fn pipeline(&mut self, p: &Pipeline, io: &mut Io) -> Flow {
        let mut input: Option<Vec<u8>> = None;
        for (i, cmd) in p.iter().enumerate() {
            let last = i + 1 == p.len();
            let mut buffer = Vec::new();
            let mut stdin_buf;
            let stdin: &mut dyn Read = match input.take() {
                Some(b) => {
                    stdin_buf = Cursor::new(b);
                    &mut stdin_buf
                }
                None if i == 0 => &mut *io.stdin,
                None => {
                    stdin_buf = Cursor::new(Vec::new());
                    &mut stdin_buf
                }
            };
            let stdout: &mut dyn Write = if last { &mut *io.stdout } else { &mut buffer };
            let mut stage = Io {
                stdin,
                stdout,
                stderr: &mut *io.stderr,
                vars: io.vars,
            };
            let flow = self.command(cmd, &mut stage);
            if let Flow::Exit(c) = flow {
                return Flow::Exit(c);
            }
            if !last {
                input = Some(buffer);
            }
        }
        Flow::Go
    }

    fn command(&mut self, cmd: &Command, io: &mut Io) -> Flow {
        let args: Vec<String> = cmd.words.iter().flat_map(|w| self.expand(w)).collect();
        let assigned: Vec<(String, String)> = cmd
            .assigns
            .iter()
            .map(|(k, w)| (k.clone(), self.expand(w).join(" ")))
            .collect();
        if args.is_empty() {
            self.vars.extend(assigned);
            self.last = 0;
            return Flow::Go;
        }
        // Redirections, in order.
        let mut out_file: Option<std::fs::File> = None;
        let mut err_file: Option<std::fs::File> = None;
        let mut in_file: Option<std::fs::File> = None;
        let (mut err_to_out, mut out_to_err) = (false, false);
        for (op, target) in &cmd.redirects {
            let path = target
                .as_ref()
                .map(|w| self.expand(w).join(" "))
                .unwrap_or_default();
            let opened = match *op {
                ">" | "2>" => std::fs::File::create(&path).map(Some),
                ">>" | "2>>" => std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map(Some),
                "<" => std::fs::File::open(&path).map(Some),
                "2>&1" => {
                    err_to_out = true;
                    Ok(None)
                }
                _ => {
                    out_to_err = true;
                    Ok(None)
                }
            };
            match opened {
                Ok(Some(f)) => match *op {
                    "<" => in_file = Some(f),
                    ">" | ">>" => out_file = Some(f),
                    _ => err_file = Some(f),
                },
                Ok(None) => {}
                Err(e) => {
                    self.last = fail(io, "sh", format!("{path}: {e}"));
                    return Flow::Go;
                }
            }
        }
        let mut vars = self.vars.clone();
        vars.extend(assigned);
        let mut stdout_w: Box<dyn Write + '_> = match out_file {
            Some(f) => Box::new(f),
            None if out_to_err => Box::new(&mut *io.stderr),
            None => Box::new(&mut *io.stdout),
        };
        let mut errs = Vec::new();
        let mut stdin_r: Box<dyn Read + '_> = match in_file {
            Some(f) => Box::new(f),
            None => Box::new(&mut *io.stdin),
        };
        let code;
        {
            let stderr_w: &mut dyn Write = match &mut err_file {
                Some(f) => f,
                None => &mut errs,
            };
            let mut sub = Io {
                stdin: &mut *stdin_r,
                stdout: &mut *stdout_w,
                stderr: stderr_w,
                vars: &vars,
            };
            let (name, rest) = (args[0].as_str(), &args[1..]);
            code = match name {
                ":" => 0,
                "exit" => {
                    let c = rest
                        .first()
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(self.last);
                    return Flow::Exit(c);
                }
                "cd" => {
                    let to = rest
                        .first()
                        .cloned()
                        .or_else(|| self.vars.get("HOME").cloned())
                        .unwrap_or("/".into());
                    match std::env::set_current_dir(&to) {
                        Ok(()) => {
                            if let Ok(d) = std::env::current_dir() {
                                self.vars.insert("PWD".into(), d.display().to_string());
                            }
                            0
                        }
                        Err(e) => fail(&mut sub, "sh: cd", format!("{to}: {e}")) + 1,
                    }
                }
                "export" => {
                    for a in rest {
                        if let Some((k, v)) = a.split_once('=') {
                            self.vars.insert(k.into(), v.into());
                        }
                    }
                    0
                }
                "unset" => {
                    for a in rest {
                        self.vars.remove(a);
                    }
                    0
                }
                "set" => 0,
                _ => match applet(name.rsplit('/').next().unwrap_or(name)) {
                    Some(run) => run(rest, &mut sub),
                    None => {
                        let _ = writeln!(sub.stderr, "sh: {name}: not found");
                        127
                    }
                },
            };
            let _ = sub.stdout.flush();
        }
        drop(stdout_w);
        if !errs.is_empty() {
            // Without a file of its own, stderr follows `2>&1` to stdout.
            let _ = if err_to_out {
                io.stdout.write_all(&errs)
            } else {
                io.stderr.write_all(&errs)
            };
        }
        self.last = code;
        Flow::Go
    }
}

/// Paths matching a pattern with `*` and `?` in its last component, sorted.
fn glob_expand(pattern: &str) -> Vec<String> {
    let (dir, pat) = match pattern.rsplit_once('/') {
        Some((d, p)) => (if d.is_empty() { "/" } else { d }, p),
        None => (".", pattern),
    };
    if dir.contains(['*', '?']) {
        return Vec::new();
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            (pat.starts_with('.') || !n.starts_with('.')) && matches(pat.as_bytes(), n.as_bytes())
        })
        .map(|n| match pattern.rsplit_once('/') {
            Some((d, _)) => format!("{d}/{n}"),
            None => n,
        })
        .collect();
    out.sort();
    out
}

fn matches(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => matches(&p[1..], s) || (!s.is_empty() && matches(p, &s[1..])),
        (Some(b'?'), Some(_)) => matches(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => matches(&p[1..], &s[1..]),
        _ => false,
    }
}

pub fn main(args: &[String], io: &mut Io) -> i32 {
    let mut shell = Shell {
        vars: io.vars.clone(),
        last: 0,
    };
    if let Some(i) = args
        .iter()
        .position(|a| a.starts_with('-') && a.contains('c'))
    {
        let Some(script) = args.get(i + 1) else {
            return fail(io, "sh", "-c requires an argument") + 1;
        };
        return match shell.run_script(script, io) {
            Flow::Exit(c) => c,
            Flow::Go => shell.last,
        };
    }
    if let Some(file) = args.first() {
        return match std::fs::read_to_string(file) {
            Ok(src) => match shell.run_script(&src, io) {
                Flow::Exit(c) => c,
                Flow::Go => shell.last,
            },
            Err(e) => fail(io, "sh", format!("{file}: {e}")) + 126,
        };
    }
    // Commands from stdin, a line at a time; a prompt on a terminal.
    let tty = io::stdin().is_terminal();
    let prompt = if shell.vars.get("USER").is_some_and(|u| u != "root") {
        "$ "
    } else {
        "# "
    };
    let mut reader = BufReader::new(&mut *io.stdin);
    let mut line = String::new();
    loop {
        if tty {
            let _ = write!(io.stdout, "{prompt}");
            let _ = io.stdout.flush();
        }
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut sub = Io {
            stdin: &mut reader,
            stdout: &mut *io.stdout,
            stderr: &mut *io.stderr,
            vars: io.vars,
        };
        if let Flow::Exit(c) = shell.run_script(&line, &mut sub) {
            return c;
        }
        let _ = io.stdout.flush();
    }
    if tty {
        let _ = writeln!(io.stdout, "exit");
    }
    shell.last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str) -> (String, String, i32) {
        let vars = BTreeMap::from([("A".to_string(), "x y".to_string())]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input = Cursor::new(Vec::new());
        let mut io = Io {
            stdin: &mut input,
            stdout: &mut out,
            stderr: &mut err,
            vars: &vars,
        };
        let mut sh = Shell {
            vars: vars.clone(),
            last: 0,
        };
        let code = match sh.run_script(script, &mut io) {
            Flow::Exit(c) => c,
            Flow::Go => sh.last,
        };
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            code,
        )
    }

    #[test]
    fn pipes_lists_and_quotes() {
        assert_eq!(run("echo hi | cat").0, "hi\n");
        assert_eq!(run("echo 'a  b' \"$A\" $A").0, "a  b x y x y\n");
        assert_eq!(run("false && echo no; echo yes || echo no").0, "yes\n");
        assert_eq!(run("nope").2, 127);
        assert_eq!(run("exit 3").2, 3);
        assert_eq!(run("false; echo $?").0, "1\n");
        assert_eq!(run("B=1; echo ${B}2").0, "12\n");
        assert_eq!(run("nope 2>&1 | wc -l").0, "1\n");
    }
}
