//! Garbage collection of the image store: when modules and their compiled
//! artifacts take more than the configured bound, the images no pod uses
//! are removed, least recently used first (and none stored or used within
//! the minimum age). Compiled artifacts whose module
//! is gone, or that an older engine configuration produced, always go.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use crate::{ImageRef, Result, Runtime};

/// What a collection did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Bytes of modules and compiled artifacts before the collection.
    pub before: u64,
    /// Bytes after it.
    pub after: u64,
    /// Digests of the modules removed.
    pub removed: Vec<String>,
}

impl Runtime {
    /// Collects garbage so that the store fits in its bound, keeping every
    /// image in `in_use` (image references as pods write them).
    pub fn collect_garbage<'a>(
        &self,
        in_use: impl IntoIterator<Item = &'a str>,
    ) -> Result<GcReport> {
        let _gc = self.gc_lock.lock().expect("gc lock");
        let keep: HashSet<String> = in_use
            .into_iter()
            .filter_map(|i| ImageRef::parse(i).ok())
            .filter_map(|r| self.images().resolve(&r).ok().flatten())
            .collect();
        let blobs = self.images().blobs()?;
        let present: HashSet<&str> = blobs.iter().map(|(d, ..)| d.as_str()).collect();
        let mut compiled: HashMap<String, u64> = HashMap::new();
        let mut before = 0;
        for (path, size) in self.compiled_files()? {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let current = crate::pools::Flavor::ALL
                .iter()
                .any(|f| name.ends_with(&format!("-{}.cwasm", self.engine_tag(*f))));
            let digest = format!("sha256:{}", name.split('-').next().unwrap_or_default());
            if !current || !present.contains(digest.as_str()) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            before += size;
            *compiled.entry(digest).or_default() += size;
        }
        before += blobs.iter().map(|(_, size, _)| size).sum::<u64>();
        let mut report = GcReport {
            before,
            after: before,
            removed: Vec::new(),
        };
        if before <= self.config.image_cache_max_bytes {
            return Ok(report);
        }
        let last_used = self.last_used.lock().expect("last-used lock").clone();
        let old_enough = SystemTime::now()
            .checked_sub(self.config.image_minimum_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut candidates: Vec<(SystemTime, &String, u64)> = blobs
            .iter()
            .filter(|(d, ..)| !keep.contains(d))
            .map(|(d, size, stored)| {
                let used = last_used.get(d).copied().unwrap_or(*stored).max(*stored);
                (used, d, size + compiled.get(d).copied().unwrap_or(0))
            })
            .filter(|(used, ..)| *used <= old_enough)
            .collect();
        candidates.sort();
        for (_, digest, size) in candidates {
            if report.after <= self.config.image_cache_max_bytes {
                break;
            }
            self.images().remove(digest)?;
            for flavor in crate::pools::Flavor::ALL {
                let _ = std::fs::remove_file(self.compiled_path(digest, flavor));
            }
            self.forget(digest);
            report.after -= size;
            report.removed.push(digest.clone());
        }
        Ok(report)
    }

    fn compiled_files(&self) -> Result<Vec<(std::path::PathBuf, u64)>> {
        let dir = self.images().root().join("compiled");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(entries
            .flatten()
            .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
            .collect())
    }
}
