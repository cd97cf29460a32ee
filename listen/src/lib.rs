//! shoal's listeners. This crate uses no other of shoal's.
//!
//! Accepting connections without running out of descriptors: every
//! connection the process's listeners (the API, the kubelet API, NodePorts)
//! accept takes a slot of one budget, and a listener whose connection finds
//! the budget spent accepts nothing more until a slot is free, so a flood
//! of connections waits in the kernel's backlog instead of taking the
//! descriptors the store, pods and outgoing connections need. A listener
//! with no connection holds no slot, so any number of idle listeners leave
//! the budget whole; past the budget, at most one connection per listener
//! waits for its slot. Accept errors are waited out, not spun on; TLS
//! handshakes have a deadline.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections open at once when the process sets no budget.
const DEFAULT_BUDGET: usize = 4096;

/// How long a client has to finish its TLS handshake: a silent one must
/// not hold a slot for long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

static BUDGET: OnceLock<Arc<Semaphore>> = OnceLock::new();

fn budget() -> &'static Arc<Semaphore> {
    BUDGET.get_or_init(|| Arc::new(Semaphore::new(DEFAULT_BUDGET)))
}

/// Sets how many connections the process's listeners hold open at once
/// (before any is accepted; later calls change nothing).
pub fn set_budget(connections: usize) {
    let _ = BUDGET.set(Arc::new(Semaphore::new(connections.max(16))));
}

/// Slots of the budget still free.
pub fn free_slots() -> usize {
    budget().available_permits()
}

/// A connection's slot of the budget, given back when dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

/// The next connection on `listener` and its slot: waits for a
/// connection, then for a free slot (an accept error, out of descriptors
/// say, is logged and waited out for a second).
pub async fn accept(listener: &mut TcpListener) -> (TcpStream, SocketAddr, Slot) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let permit = budget()
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the budget is never closed");
                let _ = tcp.set_nodelay(true);
                return (tcp, peer, Slot(permit));
            }
            Err(e) => {
                tracing::error!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The TLS session of an accepted connection, or `None` when the client
/// failed or did not finish its handshake within [`HANDSHAKE_TIMEOUT`].
pub async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake with {peer}: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake with {peer} timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_past_the_budget_wait_for_a_slot() {
        set_budget(16);
        let before = free_slots();
        // Listeners waiting for connections hold no slot.
        let mut idle = Vec::new();
        for _ in 0..before + 4 {
            let mut l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            idle.push(tokio::spawn(async move { accept(&mut l).await }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(free_slots(), before, "idle listeners took slots");
        let mut listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // One more than the budget waits for a slot; the last waits in
        // the backlog.
        let clients: Vec<_> = (0..before + 2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut held = Vec::new();
        for _ in 0..before {
            held.push(accept(&mut listener).await);
        }
        assert_eq!(free_slots(), 0);
        let waiting = tokio::time::timeout(Duration::from_millis(200), accept(&mut listener));
        assert!(waiting.await.is_err(), "accepted past the budget");
        held.pop();
        let next = tokio::time::timeout(Duration::from_secs(5), accept(&mut listener)).await;
        assert!(next.is_ok(), "a freed slot is taken");
        drop((held, next, clients));
        idle.iter().for_each(|t| t.abort());
        assert_eq!(free_slots(), before);
    }
}
