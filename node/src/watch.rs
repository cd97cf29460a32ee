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

/// Takes what else `changes` yields within `quiet` (the tail of a burst),
/// so a burst of changes makes one recomputation.
pub(crate) async fn settle<S>(changes: &mut S, quiet: std::time::Duration)
where
    S: futures::Stream + Unpin,
{
    let deadline = tokio::time::sleep(quiet);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = changes.next() => {}
            () = &mut deadline => return,
        }
    }
}

/// `slices` by the (namespace, name) of the Service their
/// `kubernetes.io/service-name` label names.
pub(crate) fn slices_by_service(
    slices: &[std::sync::Arc<k8s_openapi::api::discovery::v1::EndpointSlice>],
) -> std::collections::HashMap<(&str, &str), Vec<&k8s_openapi::api::discovery::v1::EndpointSlice>> {
    let mut by_service: std::collections::HashMap<(&str, &str), Vec<_>> =
        std::collections::HashMap::new();
    for s in slices {
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        if let Some(svc) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
        {
            by_service.entry((ns, svc.as_str())).or_default().push(&**s);
        }
    }
    by_service
}
