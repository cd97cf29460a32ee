//! shoal's toolbox: the small commands `kubectl exec`, `cp` and `debug` run
//! in a Wasm pod. The first argument names the applet (`sh`, `ls`, …).

mod files;
mod sh;
mod tar;
mod text;
mod wget;

use std::collections::BTreeMap;
use std::io::{Read, Write};

/// The streams and variables one applet runs with.
pub struct Io<'a> {
    pub stdin: &'a mut dyn Read,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    /// The environment the applet sees (the shell's variables).
    pub vars: &'a BTreeMap<String, String>,
}

/// An applet: its arguments (without its name) to an exit code.
pub type Applet = fn(&[String], &mut Io) -> i32;

/// The applet called `name`.
pub fn applet(name: &str) -> Option<Applet> {
    Some(match name {
        "sh" => sh::main,
        "ls" => files::ls,
        "cat" => files::cat,
        "mkdir" => files::mkdir,
        "rm" => files::rm,
        "rmdir" => files::rmdir,
        "touch" => files::touch,
        "cp" => files::cp,
        "mv" => files::mv,
        "pwd" => files::pwd,
        "tar" => tar::main,
        "wget" => wget::main,
        "env" | "printenv" => text::env,
        "echo" => text::echo,
        "head" => text::head,
        "tail" => text::tail,
        "wc" => text::wc,
        "grep" => text::grep,
        "sleep" => text::sleep,
        "true" => |_, _| 0,
        "false" => |_, _| 1,
        "test" | "[" => text::test,
        "date" => text::date,
        "hostname" => text::hostname,
        _ => return None,
    })
}

/// Writes an error as `name: message` and gives the exit code 1.
pub fn fail(io: &mut Io, name: &str, message: impl std::fmt::Display) -> i32 {
    let mut text = message.to_string();
    // The OS's error number means nothing to a reader.
    if let Some(at) = text.find(" (os error ") {
        if let Some(end) = text[at..].find(')') {
            text.replace_range(at..at + end + 1, "");
        }
    }
    let _ = writeln!(io.stderr, "{name}: {text}");
    1
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    let name = if name == "toolbox" || name.ends_with(".wasm") {
        args.remove(0);
        args.first().cloned().unwrap_or_default()
    } else {
        name
    };
    let code = match applet(&name) {
        Some(run) => {
            let vars: BTreeMap<String, String> = std::env::vars().collect();
            let (mut stdin, mut stdout, mut stderr) =
                (std::io::stdin(), std::io::stdout(), std::io::stderr());
            let mut io = Io {
                stdin: &mut stdin,
                stdout: &mut stdout,
                stderr: &mut stderr,
                vars: &vars,
            };
            let code = run(args.get(1..).unwrap_or_default(), &mut io);
            let _ = io.stdout.flush();
            code
        }
        None => {
            eprintln!("{name}: applet not found");
            127
        }
    };
    exit(code)
}

/// Ends the instance with `code`: written to the node's status directory
/// when there is one (WASI preview 2 commands end only with success or
/// failure), then success or failure.
pub fn exit(code: i32) -> ! {
    let _ = std::fs::write("/run/shoal/exec/status", code.to_string());
    std::process::exit(if code == 0 { 0 } else { 1 })
}
