//! The kubelet's `/stats/summary`, the figures the control plane's
//! resource metrics API (`kubectl top`) is made from: for the node, the
//! machine's CPU and memory (from `/proc`); for each running container, the
//! CPU time its instances ran and the linear memory they hold (counted by
//! the runtime as they run, [`shoal_runtime_wasm::Usage`]); a pod is the
//! sum of its containers.
//!
//! A rate (`usageNanoCores`) is the CPU used between two reads at least
//! [`WINDOW`] apart, as cAdvisor's housekeeping makes it; before the
//! second read, the average since the first sample.
//!
//! May import: the agent's shared state and exec's running containers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::agent::Shared;

/// The shortest time between the two samples of a rate.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// A cumulative CPU figure at an instant.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    cpu: Duration,
}

/// The samples rates are made from: the last two, by what they count.
#[derive(Default)]
pub(crate) struct Sampler(Mutex<HashMap<String, (Sample, Option<Sample>)>>);

impl Sampler {
    /// The rate of `key`'s CPU now that it has used `cpu`, in nanocores:
    /// over the last window, or since `since` before a window has passed.
    fn rate(&self, key: &str, cpu: Duration, since: Instant) -> u64 {
        let now = Sample {
            at: Instant::now(),
            cpu,
        };
        let mut map = self.0.lock().expect("stats lock");
        let entry = map.entry(key.to_string()).or_insert((
            Sample {
                at: since,
                cpu: Duration::ZERO,
            },
            None,
        ));
        // The older sample the rate is measured from: the last one, once
        // it is a window old.
        if now.at.duration_since(entry.0.at) >= WINDOW {
            entry.1 = Some(entry.0);
            entry.0 = now;
        }
        let from = entry.1.unwrap_or(entry.0);
        nanocores(from, now)
    }

    /// Forgets what is no longer running.
    fn keep(&self, live: &[String]) {
        self.0
            .lock()
            .expect("stats lock")
            .retain(|k, _| k == NODE || live.contains(k));
    }
}

const NODE: &str = "";

/// CPU used between two samples as a share of one core, in nanocores.
fn nanocores(from: Sample, to: Sample) -> u64 {
    let wall = to.at.saturating_duration_since(from.at).as_nanos();
    if wall == 0 {
        return 0;
    }
    let used = to.cpu.saturating_sub(from.cpu).as_nanos();
    u64::try_from(used * 1_000_000_000 / wall).unwrap_or(u64::MAX)
}

/// The machine's CPU time so far (every core's non-idle time), from
/// `/proc/stat`.
fn machine_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are
    // not use.
    let busy: u64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, v)| v)
        .sum();
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(busy * 10))
}

/// The machine's memory: (total, available) in bytes, from
/// `/proc/meminfo`.
fn machine_memory() -> Option<(u64, u64)> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

fn cpu_stats(time: &str, nanocores: u64, total: Duration) -> Value {
    json!({
        "time": time,
        "usageNanoCores": nanocores,
        "usageCoreNanoSeconds": u64::try_from(total.as_nanos()).unwrap_or(u64::MAX),
    })
}

fn memory_stats(time: &str, used: u64, available: Option<u64>) -> Value {
    let mut m = json!({
        "time": time,
        "usageBytes": used,
        "workingSetBytes": used,
        "rssBytes": used,
        "pageFaults": 0,
        "majorPageFaults": 0,
    });
    if let Some(a) = available {
        m["availableBytes"] = a.into();
    }
    m
}

/// `/stats/summary`.
pub(crate) fn summary(shared: &Shared) -> Value {
    let time = crate::containers::now();
    let sampler = &shared.stats;
    let started = shared.started;
    let cpu = machine_cpu().unwrap_or_default();
    let (total, available) = machine_memory().unwrap_or_default();
    let node = json!({
        "nodeName": shared.config.node_name,
        "startTime": shared.started_at,
        "cpu": cpu_stats(&time, sampler.rate(NODE, cpu, started), cpu),
        "memory": memory_stats(&time, total.saturating_sub(available), Some(available)),
    });
    let names: HashMap<String, (String, String)> = shared
        .by_name
        .lock()
        .expect("names lock")
        .iter()
        .map(|(k, uid)| (uid.clone(), k.clone()))
        .collect();
    let mut pods: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    let mut live = Vec::new();
    for ((uid, container), target) in shared.exec.all() {
        let Some(usage) = target.spec.usage.as_ref() else {
            continue;
        };
        let key = format!("{uid}/{container}");
        let cpu = usage.cpu();
        let rate = sampler.rate(&key, cpu, target.started);
        live.push(key);
        pods.entry(uid).or_default().push(json!({
            "name": container,
            "startTime": target.started_at,
            "cpu": cpu_stats(&time, rate, cpu),
            "memory": memory_stats(&time, usage.memory() as u64, None),
        }));
    }
    sampler.keep(&live);
    let pods: Vec<Value> = pods
        .into_iter()
        .filter_map(|(uid, containers)| {
            let (ns, name) = names.get(&uid)?.clone();
            let sum = |path: &str| {
                containers
                    .iter()
                    .filter_map(|c| c.pointer(path).and_then(Value::as_u64))
                    .sum::<u64>()
            };
            let (nanocores, core_ns, memory) = (
                sum("/cpu/usageNanoCores"),
                sum("/cpu/usageCoreNanoSeconds"),
                sum("/memory/workingSetBytes"),
            );
            Some(json!({
                "podRef": {"name": name, "namespace": ns, "uid": uid},
                "startTime": containers.first().and_then(|c| c.get("startTime")).cloned(),
                "containers": containers,
                "cpu": cpu_stats(&time, nanocores, Duration::from_nanos(core_ns)),
                "memory": memory_stats(&time, memory, None),
            }))
        })
        .collect();
    json!({"node": node, "pods": pods})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_the_cpu_used_over_the_wall_time() {
        let t = Instant::now();
        let from = Sample {
            at: t,
            cpu: Duration::from_millis(100),
        };
        let to = Sample {
            at: t + Duration::from_secs(10),
            cpu: Duration::from_millis(2100),
        };
        // 2 s of CPU in 10 s: a fifth of a core.
        assert_eq!(nanocores(from, to), 200_000_000);
        assert_eq!(nanocores(to, to), 0);
    }

    #[test]
    fn before_a_window_passes_the_rate_is_the_average_since_the_start() {
        let s = Sampler::default();
        let start = Instant::now() - Duration::from_secs(4);
        let r = s.rate("p/c", Duration::from_secs(1), start);
        // 1 s of CPU in about 4 s.
        assert!((240_000_000..=250_000_000).contains(&r), "{r}");
        s.keep(&[]);
        assert!(s.0.lock().unwrap().is_empty());
    }

    #[test]
    fn the_machine_is_read_from_proc() {
        assert!(machine_cpu().is_some_and(|c| c > Duration::ZERO));
        let (total, available) = machine_memory().unwrap();
        assert!(total > 0 && available <= total);
    }
}
