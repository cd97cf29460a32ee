//! Cluster-wide object stores for the agent's loops: a reflector store of
//! every object of a kind and a stream that wakes on each of its watch
//! events, the end of the initial list included (the store shows the
//! listed objects only from then on).

use std::fmt::Debug;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde::de::DeserializeOwned;

/// Every `K` of the cluster, and its changes (driven by polling the
/// stream).
pub(crate) fn reflect<K>(client: &kube::Client) -> (Store<K>, BoxStream<'static, ()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let changes = reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .map(|_| ())
    .boxed();
    (store, changes)
}
