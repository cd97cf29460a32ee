//! Pods' network namespaces: a container whose spec names a network
//! namespace (a CRI pod's, set up by its CNI plugins) runs its instances
//! on a thread that has entered that namespace, under a single-threaded
//! executor of its own, so every socket its guests open — and every
//! thread that executor starts for blocking work — is in the pod's
//! network with the pod's address. One thread serves every container of
//! a namespace and ends when the last of them is gone.
//!
//! May import: nothing of the shim.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// An executor inside one network namespace; the thread ends when the
/// last holder drops it.
pub(crate) struct Executor {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl Executor {
    /// Where instances of the namespace's containers run.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

/// The executors of the daemon, by namespace path.
#[derive(Default)]
pub(crate) struct Namespaces(Mutex<HashMap<PathBuf, Weak<Executor>>>);

impl Namespaces {
    /// The executor of the namespace at `path`, started if none runs.
    pub fn executor(&self, path: &Path) -> Result<Arc<Executor>, String> {
        let mut all = self.0.lock().expect("namespaces lock");
        all.retain(|_, e| e.strong_count() > 0);
        if let Some(e) = all.get(path).and_then(Weak::upgrade) {
            return Ok(e);
        }
        let e = Arc::new(start(path)?);
        all.insert(path.to_path_buf(), Arc::downgrade(&e));
        Ok(e)
    }
}

fn start(path: &Path) -> Result<Executor, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("network namespace {}: {e}", path.display()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            use std::os::fd::AsFd;
            let entered = rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| format!("entering the network namespace: {e}"));
            drop(file);
            let runtime = entered.and_then(|()| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("an executor for the namespace: {e}"))
            });
            match runtime {
                Ok(rt) => {
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(async {
                        let _ = stop_rx.await;
                    });
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .map_err(|e| format!("a thread for the namespace: {e}"))?;
    let handle = rx
        .recv()
        .map_err(|_| "the namespace's thread ended".to_string())??;
    Ok(Executor {
        handle,
        _stop: stop_tx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_is_an_error() {
        let ns = Namespaces::default();
        let err = ns.executor(Path::new("/nonexistent/netns")).err().unwrap();
        assert!(err.contains("/nonexistent/netns"), "{err}");
    }

    #[test]
    fn one_executor_per_namespace_while_held() {
        // The process's own namespace stands in for a pod's.
        let ns = Namespaces::default();
        let path = Path::new("/proc/self/ns/net");
        let a = ns.executor(path).unwrap();
        let b = ns.executor(path).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ran.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        a.handle().spawn(async move {
            r.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = tx.send(());
        });
        rx.recv().unwrap();
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
        drop((a, b));
        let c = ns.executor(path).unwrap();
        assert_eq!(
            Arc::strong_count(&c),
            1,
            "a new executor once the old one was dropped"
        );
    }
}
