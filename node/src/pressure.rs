//! Node pressure, as the kubelet's eviction manager measures it: the
//! signals `memory.available` (the machine's available memory),
//! `nodefs.available` and `nodefs.inodesFree` (the filesystem of the
//! agent's data directory), `pid.available` (pods the node may still
//! run), each against the hard thresholds of `--eviction-hard`. A signal
//! under its threshold sets the node's `MemoryPressure`, `DiskPressure` or
//! `PIDPressure` condition, and under memory or disk pressure the node
//! evicts a pod each pass ([`victim`]: the kubelet's ranking by usage over
//! requests, priority and usage), with the kubelet's reasons and messages.
//!
//! May import: nothing of the agent's (`measure` reads `/proc` and the
//! filesystem; `decide` is pure).

use std::path::Path;

/// A signal the thresholds speak of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    MemoryAvailable,
    NodefsAvailable,
    NodefsInodesFree,
    PidAvailable,
}

impl Signal {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "memory.available" => Signal::MemoryAvailable,
            "nodefs.available" | "imagefs.available" => Signal::NodefsAvailable,
            "nodefs.inodesFree" | "imagefs.inodesFree" => Signal::NodefsInodesFree,
            "pid.available" => Signal::PidAvailable,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodefsAvailable => "nodefs.available",
            Signal::NodefsInodesFree => "nodefs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }
}

/// Where a threshold lies: an amount, or a share of the capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Level {
    Amount(u64),
    Percent(f64),
}

/// The hard eviction thresholds (`--eviction-hard`).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds(Vec<(Signal, Level)>);

impl Thresholds {
    /// The kubelet's defaults.
    pub const DEFAULT: &str = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%";

    /// `signal<quantity` or `signal<N%`, comma-separated.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('<')
                .ok_or_else(|| format!("{part:?}: a threshold is signal<value"))?;
            let signal = Signal::parse(name.trim())
                .ok_or_else(|| format!("{part:?}: unknown eviction signal {name:?}"))?;
            let value = value.trim();
            let level = match value.strip_suffix('%') {
                Some(p) => Level::Percent(
                    p.parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=100.0).contains(p))
                        .ok_or_else(|| format!("{part:?}: a percentage from 0 to 100"))?,
                ),
                None => Level::Amount(
                    shoal_quantity::bytes(value)
                        .ok_or_else(|| format!("{part:?}: not a quantity"))?,
                ),
            };
            out.push((signal, level));
        }
        Ok(Self(out))
    }
}

/// What the node measured: available and capacity of each signal.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Observed {
    pub memory: (u64, u64),
    pub disk: (u64, u64),
    pub inodes: (u64, u64),
    pub pids: (u64, u64),
}

/// Measures the machine's memory and the data directory's filesystem;
/// `pods` running of `max_pods`.
pub(crate) fn measure(data_dir: &Path, pods: u64, max_pods: u64) -> Observed {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    let (disk, inodes) = match rustix::fs::statvfs(data_dir) {
        Ok(s) => (
            (s.f_bavail * s.f_frsize, s.f_blocks * s.f_frsize),
            (s.f_favail, s.f_files),
        ),
        Err(_) => ((0, 0), (0, 0)),
    };
    Observed {
        memory: (field("MemAvailable:"), field("MemTotal:")),
        disk,
        inodes,
        pids: (max_pods.saturating_sub(pods), max_pods),
    }
}

/// The node's pressures and, for each, the kubelet's words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pressure {
    pub memory: Option<String>,
    pub disk: Option<String>,
    pub pid: Option<String>,
}

/// The pressures `observed` puts the node under.
pub(crate) fn decide(t: &Thresholds, o: &Observed) -> Pressure {
    let mut p = Pressure::default();
    for (signal, level) in &t.0 {
        let (available, capacity) = match signal {
            Signal::MemoryAvailable => o.memory,
            Signal::NodefsAvailable => o.disk,
            Signal::NodefsInodesFree => o.inodes,
            Signal::PidAvailable => o.pids,
        };
        // A filesystem that reports no inodes has no inode signal.
        if capacity == 0 {
            continue;
        }
        let threshold = match level {
            Level::Amount(a) => *a,
            Level::Percent(pct) => (capacity as f64 * pct / 100.0) as u64,
        };
        if available >= threshold {
            continue;
        }
        let resource = match signal {
            Signal::MemoryAvailable => "memory",
            Signal::NodefsAvailable => "ephemeral-storage",
            Signal::NodefsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
        };
        let msg = format!(
            "The node was low on resource: {resource}. Threshold quantity: {threshold}, available: {available}. ({} < {threshold})",
            signal.name()
        );
        let slot = match signal {
            Signal::MemoryAvailable => &mut p.memory,
            Signal::NodefsAvailable | Signal::NodefsInodesFree => &mut p.disk,
            Signal::PidAvailable => &mut p.pid,
        };
        slot.get_or_insert(msg);
    }
    p
}

impl Pressure {
    /// Why a pod should be evicted now, if the node must evict one.
    pub fn eviction(&self) -> Option<&str> {
        self.memory.as_deref().or(self.disk.as_deref())
    }

    /// The node's pressure conditions, as the kubelet reports them (their
    /// transition times are the agent's record's, `node_conditions.rs`).
    pub fn conditions(&self, now: &str) -> Vec<serde_json::Value> {
        let cond = |ty: &str, on: &Option<String>, yes: &str, no: &str, msg_no: &str| {
            let (status, reason, message) = match on {
                Some(m) => ("True", yes, m.as_str()),
                None => ("False", no, msg_no),
            };
            serde_json::json!({"type": ty, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now})
        };
        vec![
            cond(
                "MemoryPressure",
                &self.memory,
                "KubeletHasInsufficientMemory",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            cond(
                "DiskPressure",
                &self.disk,
                "KubeletHasDiskPressure",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            cond(
                "PIDPressure",
                &self.pid,
                "KubeletHasInsufficientPID",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
        ]
    }
}

/// A pod the node could evict: its memory in use and requested, and its
/// priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub usage: u64,
    pub request: u64,
    pub priority: i32,
}

/// Which of `pods` to evict for memory, in the kubelet's order: first those
/// using more than they requested, then the lowest priority, then the
/// most memory beyond the request.
pub(crate) fn victim(pods: &[Candidate]) -> Option<usize> {
    pods.iter()
        .enumerate()
        .max_by_key(|(_, c)| {
            (
                c.usage > c.request,
                std::cmp::Reverse(c.priority),
                c.usage.saturating_sub(c.request),
            )
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_takes_pods_over_their_request_then_low_priority_then_usage() {
        let c = |usage, request, priority| Candidate {
            usage,
            request,
            priority,
        };
        // Within its request, a big pod stays; one over its request goes.
        assert_eq!(victim(&[c(900, 1000, 0), c(200, 100, 0)]), Some(1));
        // Both over: the lower priority goes, though it uses less.
        assert_eq!(victim(&[c(900, 0, 0), c(200, 100, -5)]), Some(1));
        // Same priority: the most beyond its request.
        assert_eq!(victim(&[c(900, 800, 0), c(500, 0, 0)]), Some(1));
        assert_eq!(victim(&[]), None);
    }

    #[test]
    fn thresholds_are_read_as_the_kubelet_writes_them() {
        let t = Thresholds::parse(Thresholds::DEFAULT).unwrap();
        assert_eq!(t.0[0], (Signal::MemoryAvailable, Level::Amount(100 << 20)));
        assert_eq!(t.0[1], (Signal::NodefsAvailable, Level::Percent(10.0)));
        assert!(Thresholds::parse("memory.available>1Gi").is_err());
        assert!(Thresholds::parse("cpu.available<1").is_err());
        assert!(Thresholds::parse("nodefs.available<120%").is_err());
    }

    #[test]
    fn a_signal_under_its_threshold_is_pressure_with_the_kubelets_words() {
        let t =
            Thresholds::parse("memory.available<1Gi,nodefs.available<10%,pid.available<2").unwrap();
        let fine = Observed {
            memory: (2 << 30, 8 << 30),
            disk: (50, 100),
            inodes: (0, 0),
            pids: (10, 110),
        };
        assert_eq!(decide(&t, &fine), Pressure::default());
        let low = Observed {
            memory: (512 << 20, 8 << 30),
            disk: (5, 100),
            pids: (1, 110),
            ..fine
        };
        let p = decide(&t, &low);
        assert!(
            p.memory
                .as_deref()
                .unwrap()
                .starts_with("The node was low on resource: memory.")
        );
        assert!(p.disk.as_deref().unwrap().contains("ephemeral-storage"));
        assert!(p.pid.is_some());
        assert_eq!(p.eviction(), p.memory.as_deref());
        let conds = p.conditions("now");
        assert_eq!(conds[0]["status"], "True");
        assert_eq!(conds[1]["reason"], "KubeletHasDiskPressure");
    }

    #[test]
    fn the_data_directory_is_measured() {
        let o = measure(Path::new("/"), 3, 110);
        assert!(o.disk.1 > 0 && o.disk.0 <= o.disk.1);
        assert!(o.memory.1 > 0);
        assert_eq!(o.pids, (107, 110));
    }
}
