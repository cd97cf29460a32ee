//! Raft transport. Members reach each other through a [`Transport`] the
//! process provides (TLS between servers, or memory in tests): each RPC is
//! a request body sent to a member's address and a reply body back, both
//! JSON. A member opened without a transport is alone: every call reports
//! the target unreachable.

use std::sync::Arc;

use futures::future::BoxFuture;
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::types::TypeConfig;

/// The calls members make on each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rpc {
    /// Raft's AppendEntries.
    Append,
    /// Raft's RequestVote.
    Vote,
    /// A chunk of a snapshot.
    Snapshot,
    /// A proposal forwarded to the leader.
    Write,
    /// A server asking the leader to make it a member.
    Join,
    /// The leader's read index, for a linearizable read elsewhere.
    ReadIndex,
    /// A member removed from the group, asked of the leader.
    Remove,
}

impl Rpc {
    /// The name of the call, as peers' paths carry it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Vote => "vote",
            Self::Snapshot => "snapshot",
            Self::Write => "write",
            Self::Join => "join",
            Self::ReadIndex => "read-index",
            Self::Remove => "remove",
        }
    }

    /// The call named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Append,
            Self::Vote,
            Self::Snapshot,
            Self::Write,
            Self::Join,
            Self::ReadIndex,
            Self::Remove,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

/// How a member reaches the others: sends `body` as call `rpc` to the
/// member at `addr` and returns the reply's body, or why it could not.
pub trait Transport: Send + Sync + 'static {
    /// One call.
    fn call(
        &self,
        addr: &str,
        rpc: Rpc,
        body: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>>;
}

/// Builds connections to peers.
pub struct Network(pub Option<Arc<dyn Transport>>);

/// A connection to one peer.
pub struct Connection {
    target: u64,
    addr: String,
    transport: Option<Arc<dyn Transport>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection {
            target,
            addr: node.addr.clone(),
            transport: self.0.clone(),
        }
    }
}

impl Connection {
    /// Sends `req` as `rpc` and reads the peer's answer.
    async fn send<Req: Serialize, Resp: serde::de::DeserializeOwned, E>(
        &self,
        rpc: Rpc,
        req: &Req,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let Some(transport) = &self.transport else {
            return Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::other("no transport to other members"),
            )));
        };
        let body = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = transport
            .call(&self.addr, rpc, body)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))?;
        let answer: Result<Resp, RaftError<u64, E>> =
            crate::decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.send(Rpc::Append, &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.send(Rpc::Snapshot, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.send(Rpc::Vote, &rpc).await
    }
}
