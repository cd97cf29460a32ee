//! `shoal node setup`: makes a machine's containerd run Wasm containers
//! with shoal's runtime — installs `containerd-shim-shoal-v1` where
//! containerd finds it, adds the runtime to the CRI plugin's runtimes in
//! containerd's configuration, and prints the RuntimeClass that sends pods
//! to it. Editing the configuration is pure ([`with_runtime`]); the rest
//! is file I/O.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The shim's binary name: containerd derives it from the runtime type
/// `io.containerd.shoal.v1`.
pub const SHIM: &str = "containerd-shim-shoal-v1";

/// The CRI plugin's table of runtimes in each version of containerd's
/// configuration file.
fn runtimes_table(version: u32) -> &'static str {
    match version {
        3.. => "plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes",
        2 => "plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes",
        _ => "plugins.cri.containerd.runtimes",
    }
}

/// The configuration's `version` (1 when it names none, as containerd
/// reads it).
fn config_version(config: &str) -> u32 {
    config
        .lines()
        .map(str::trim)
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "version").then(|| value.trim().parse().ok())?
        })
        .unwrap_or(1)
}

/// `config` with a runtime `handler` of type `io.containerd.shoal.v1`
/// added to the CRI plugin, or `None` when it has that runtime already.
/// An empty configuration becomes a version 2 one. containerd replaces
/// its default runtimes with a configuration's table of runtimes, so runc
/// is added too when the configuration names no runtime of the default
/// name (`runc`) — else the CRI plugin would not load.
pub fn with_runtime(config: &str, handler: &str) -> Option<String> {
    let mut out = config.to_string();
    if config.trim().is_empty() {
        out = "version = 2\n".into();
    }
    let runtimes = runtimes_table(config_version(&out));
    let has = |text: &str, name: &str| {
        let table = format!("[{runtimes}.{name}]");
        text.lines().any(|l| l.trim() == table)
    };
    if has(&out, handler) {
        return None;
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "\n# shoal's Wasm runtime (written by `shoal node setup`); pods' shoal.dev/\n\
         # annotations reach it (the stop request, `shoal.dev/stop-file`).\n\
         [{runtimes}.{handler}]\n  runtime_type = \"{}\"\n  pod_annotations = [\"shoal.dev/*\"]\n",
        shoal_runtime_wasm::shim::RUNTIME_ID
    ));
    let default_name = out
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "default_runtime_name")
                .then(|| value.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "runc".into());
    if default_name == "runc" && !has(&out, "runc") {
        out.push_str(&format!(
            "\n# containerd's default runtime, which a table of runtimes must name.\n[{runtimes}.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n"
        ));
    }
    Some(out)
}

/// The RuntimeClass whose pods run with the runtime.
pub fn runtime_class(handler: &str) -> String {
    format!(
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: {handler}\nhandler: {handler}\n"
    )
}

/// What `setup` is asked to do.
pub struct Setup {
    pub containerd_config: PathBuf,
    pub bin_dir: PathBuf,
    pub handler: String,
    pub dry_run: bool,
}

/// Installs the shim, edits containerd's configuration and prints the
/// RuntimeClass.
pub fn setup(s: &Setup) -> Result<()> {
    if s.handler.is_empty()
        || !s
            .handler
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        bail!(
            "--handler {:?}: a RuntimeClass handler is a lower-case DNS label",
            s.handler
        );
    }
    let shim = std::env::current_exe()
        .context("finding the shoal binary")?
        .with_file_name(SHIM);
    if !shim.exists() {
        bail!(
            "{} is missing: it ships beside the shoal binary",
            shim.display()
        );
    }
    let target = s.bin_dir.join(SHIM);
    let config = match std::fs::read_to_string(&s.containerd_config) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).context(format!("reading {}", s.containerd_config.display())),
    };
    let edited = with_runtime(&config, &s.handler);
    if s.dry_run {
        eprintln!("would install {} as {}", shim.display(), target.display());
        match &edited {
            Some(c) => eprintln!("would write {}:\n{c}", s.containerd_config.display()),
            None => eprintln!("{} has the runtime already", s.containerd_config.display()),
        }
    } else {
        install(&shim, &target)?;
        eprintln!("installed {}", target.display());
        match edited {
            Some(c) => {
                write_atomic(&s.containerd_config, &c)?;
                eprintln!(
                    "added runtime {:?} to {}: restart containerd to load it",
                    s.handler,
                    s.containerd_config.display()
                );
            }
            None => eprintln!(
                "{} has runtime {:?} already",
                s.containerd_config.display(),
                s.handler
            ),
        }
    }
    eprintln!("apply this RuntimeClass to the cluster (kubectl apply -f -):");
    print!("{}", runtime_class(&s.handler));
    Ok(())
}

/// Copies the shim into place (through a temporary file, so a running
/// shim is not overwritten), unless it is the same file.
fn install(shim: &Path, target: &Path) -> Result<()> {
    let same = match (shim.canonicalize(), target.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Ok(());
    }
    std::fs::create_dir_all(target.parent().unwrap_or(Path::new("/")))
        .with_context(|| format!("creating {}", target.display()))?;
    let tmp = target.with_extension("new");
    std::fs::copy(shim, &tmp).with_context(|| format!("copying to {}", tmp.display()))?;
    std::fs::rename(&tmp, target).with_context(|| format!("installing {}", target.display()))?;
    Ok(())
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("shoal-new");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_is_added_once_in_the_configurations_own_version() {
        let fresh = with_runtime("", "shoal").unwrap();
        assert!(fresh.starts_with("version = 2\n"));
        assert!(fresh.contains(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.shoal]\n  runtime_type = \"io.containerd.shoal.v1\"\n  pod_annotations = [\"shoal.dev/*\"]\n"
        ));
        assert!(fresh.contains(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n"
        ), "the default runtime stays: {fresh}");
        assert_eq!(with_runtime(&fresh, "shoal"), None, "idempotent");
        let with_runc =
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n";
        let added = with_runtime(with_runc, "shoal").unwrap();
        assert_eq!(added.matches("runtimes.runc]").count(), 1, "{added}");
        let crun = "version = 2\n  default_runtime_name = \"crun\"\n";
        assert!(
            !with_runtime(crun, "shoal")
                .unwrap()
                .contains("runtimes.runc]")
        );
        assert!(with_runtime(&fresh, "wasm").is_some(), "another handler");

        let v3 = with_runtime("version = 3\n[grpc]\n  address = \"/x\"", "shoal").unwrap();
        assert!(
            v3.contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.shoal]")
        );
        let v1 = with_runtime("[plugins.cri]\n", "shoal").unwrap();
        assert!(v1.contains("[plugins.cri.containerd.runtimes.shoal]"));
    }

    #[test]
    fn the_runtime_class_names_the_handler() {
        assert!(runtime_class("shoal").contains("\nhandler: shoal\n"));
    }
}
