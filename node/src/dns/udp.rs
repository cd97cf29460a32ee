//! The cluster DNS over UDP: a loop of shoal's own around hickory's message
//! types. A few tasks share the socket, each receiving a query, answering
//! it from the zone and sending the answer, with no task or channel per
//! query; only a name that is not the cluster's goes to a task of its own,
//! which forwards it to the node's resolvers.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_server::proto::op::Message;
use tokio::net::UdpSocket;

use super::Names;
use super::server::{encode, forward, forwarded_response, malformed, udp_limit, zone_response};

/// The largest query read (EDNS allows more than 512 bytes).
const MAX_QUERY: usize = 4096;

/// Forwarded queries in flight at once; more are answered ServFail.
const MAX_FORWARDS: usize = 256;

/// Answers queries on `socket` until the task is dropped.
pub(crate) async fn serve(socket: UdpSocket, names: Names, upstreams: Vec<SocketAddr>) {
    let socket = Arc::new(socket);
    let upstreams: Arc<[SocketAddr]> = upstreams.into();
    let forwards = Arc::new(tokio::sync::Semaphore::new(MAX_FORWARDS));
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        tasks.spawn(worker(
            socket.clone(),
            names.clone(),
            upstreams.clone(),
            forwards.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

async fn worker(
    socket: Arc<UdpSocket>,
    names: Names,
    upstreams: Arc<[SocketAddr]>,
    forwards: Arc<tokio::sync::Semaphore>,
) {
    let mut buf = vec![0u8; MAX_QUERY];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!("cluster DNS: receiving: {e}");
                continue;
            }
        };
        let datagram = &buf[..n];
        let answer = match Message::from_vec(datagram) {
            Err(_) => malformed(datagram),
            Ok(request) => match zone_response(&names, &request) {
                Some(response) => encode(&response, udp_limit(&request)),
                None => {
                    let request_bytes = datagram.to_vec();
                    let (socket, upstreams) = (socket.clone(), upstreams.clone());
                    match forwards.clone().try_acquire_owned() {
                        Ok(permit) => {
                            tokio::spawn(async move {
                                let up = forward(&upstreams, &request_bytes).await;
                                let response = forwarded_response(&request, up);
                                if let Some(bytes) = encode(&response, udp_limit(&request)) {
                                    let _ = socket.send_to(&bytes, from).await;
                                }
                                drop(permit);
                            });
                            None
                        }
                        Err(_) => encode(&forwarded_response(&request, None), 512),
                    }
                }
            },
        };
        if let Some(bytes) = answer
            && let Err(e) = socket.send_to(&bytes, from).await
        {
            tracing::debug!("cluster DNS: answering {from}: {e}");
        }
    }
}
