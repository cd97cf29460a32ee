//! `meta.k8s.io/v1` Table responses with the columns `kubectl get` shows
//! for each kind.

use serde_json::{Value, json};

use crate::custom::{Custom, jsonpath};
use crate::meta::{parse_time, str_at};
use crate::resources::Resource;

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|a| a.contains("as=Table"))
}

/// Kubernetes' short human duration (`5s`, `3m20s`, `2d4h`).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        return if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if h < 24 * 8 {
        return if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        };
    }
    if d < 365 * 2 {
        return format!("{d}d");
    }
    format!("{}y", d / 365)
}

fn age(obj: &Value, pointer: &str) -> String {
    match str_at(obj, pointer).and_then(parse_time) {
        Some(t) => human_duration((jiff::Timestamp::now() - t).get_seconds()),
        None => "<unknown>".into(),
    }
}

fn col(name: &str, ty: &str, priority: i32, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": description, "priority": priority})
}

fn join_or_none(items: Vec<String>) -> String {
    if items.is_empty() {
        "<none>".into()
    } else {
        items.join(",")
    }
}

fn containers(obj: &Value, pointer: &str) -> (String, String) {
    let cs = obj
        .pointer(pointer)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names = cs
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
        .collect();
    let images = cs
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str).map(String::from))
        .collect();
    (join_or_none(names), join_or_none(images))
}

fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = Vec::new();
    let labels = sel
        .get("matchLabels")
        .or(Some(sel))
        .and_then(Value::as_object);
    if let Some(m) = labels {
        for (k, v) in m {
            if let Some(v) = v.as_str() {
                parts.push(format!("{k}={v}"));
            }
        }
    }
    join_or_none(parts)
}

/// Access modes as kubectl abbreviates them: `RWO,ROX`.
fn access_modes(modes: Option<&Value>) -> String {
    modes
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn meta_name(o: &Value) -> String {
    str_at(o, "/metadata/name").unwrap_or_default().to_string()
}

fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// The pod's STATUS column, as kubectl computes it.
pub fn pod_status(pod: &Value) -> String {
    let mut reason = str_at(pod, "/status/reason")
        .or(str_at(pod, "/status/phase"))
        .unwrap_or("Pending")
        .to_string();
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for cs in statuses.iter().rev() {
        if let Some(r) = str_at(cs, "/state/waiting/reason") {
            reason = r.to_string();
        } else if let Some(t) = cs.pointer("/state/terminated") {
            reason = match str_at(t, "/reason") {
                Some(r) => r.to_string(),
                None => format!("ExitCode:{}", int(t, "/exitCode")),
            };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    reason
}

/// The `-o wide` columns of controllers with a pod template.
fn template_columns() -> [Value; 3] {
    [
        col(
            "Containers",
            "string",
            1,
            "Names of each container in the template.",
        ),
        col(
            "Images",
            "string",
            1,
            "Images referenced by each container in the template.",
        ),
        col("Selector", "string", 1, "Label selector for pods."),
    ]
}

/// Columns and one row of cells for `obj` of `kind`.
pub fn columns(kind: &str) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age = col(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match kind {
        "Pod" => vec![
            name,
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            col("IP", "string", 1, "IP address allocated to the pod."),
            col(
                "Node",
                "string",
                1,
                "Name of the node the pod is assigned to.",
            ),
            col(
                "Nominated Node",
                "string",
                1,
                "Name of the node where the pod is nominated.",
            ),
            col("Readiness Gates", "string", 1, "Pod readiness gates."),
        ],
        "Node" => vec![
            name,
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            age,
            col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            col("Internal-IP", "string", 1, "List of internal IPs."),
            col("External-IP", "string", 1, "List of external IPs."),
            col("OS-Image", "string", 1, "OS Image."),
            col("Kernel-Version", "string", 1, "Kernel Version."),
            col(
                "Container-Runtime",
                "string",
                1,
                "Container Runtime Version.",
            ),
        ],
        "Deployment" => vec![
            name,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age,
        ]
        .into_iter()
        .chain(template_columns())
        .collect(),
        "ReplicaSet" | "ReplicationController" => vec![
            name,
            col("Desired", "integer", 0, "Number of desired pods."),
            col("Current", "integer", 0, "Number of actually running pods."),
            col("Ready", "integer", 0, "Number of ready pods."),
            age,
        ]
        .into_iter()
        .chain(template_columns())
        .collect(),
        "ResourceQuota" => vec![
            name,
            age,
            col("Request", "string", 0, "Request represents a minimum amount of cpu/memory that a container may consume."),
            col("Limit", "string", 0, "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
        ],
        "ControllerRevision" => vec![
            name,
            col("Controller", "string", 0, "Controller of the object."),
            col("Revision", "integer", 0, "Revision of the ControllerRevision."),
            age,
        ],
        "StatefulSet" => vec![
            name,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            age,
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
        ],
        "DaemonSet" => vec![
            name,
            col("Desired", "integer", 0, "The desired number of pods scheduled."),
            col("Current", "integer", 0, "The number of pods scheduled."),
            col("Ready", "integer", 0, "The number of ready pods."),
            col("Up-to-date", "integer", 0, "The number of pods running the current template."),
            col("Available", "integer", 0, "The number of available pods."),
            col("Node Selector", "string", 0, "The node selector of the pods."),
            age,
        ]
        .into_iter()
        .chain(template_columns())
        .collect(),
        "CronJob" => vec![
            name,
            col("Schedule", "string", 0, "The schedule for running the job."),
            col("Timezone", "string", 0, "The time zone for running the job."),
            col("Suspend", "boolean", 0, "Whether the cron job is suspended."),
            col("Active", "integer", 0, "The number of jobs running."),
            col("Last Schedule", "string", 0, "When the job was last scheduled."),
            age,
        ]
        .into_iter()
        .chain(template_columns())
        .collect(),
        "Job" => vec![
            name,
            col("Status", "string", 0, "Status of the job."),
            col("Completions", "string", 0, "The completion status of the job."),
            col("Duration", "string", 0, "Time required to complete the job."),
            age,
        ]
        .into_iter()
        .chain(template_columns())
        .collect(),
        "Service" => vec![
            name,
            col("Type", "string", 0, "The type of the service."),
            col("Cluster-IP", "string", 0, "The cluster IP of the service."),
            col(
                "External-IP",
                "string",
                0,
                "The external IP of the service.",
            ),
            col("Port(s)", "string", 0, "The ports of the service."),
            age,
            col("Selector", "string", 1, "The selector of the service."),
        ],
        "Endpoints" => vec![
            name,
            col("Endpoints", "string", 0, "Endpoints of the service."),
            age,
        ],
        "EndpointSlice" => vec![
            name,
            col("AddressType", "string", 0, "Type of address held by the slice."),
            col("Ports", "string", 0, "The ports of the slice."),
            col("Endpoints", "string", 0, "The addresses of the slice's endpoints."),
            age,
        ],
        "Namespace" => vec![
            name,
            col("Status", "string", 0, "The status of the namespace"),
            age,
        ],
        "APIService" => vec![
            name,
            col("Service", "string", 0, "The reference to the service that hosts this API endpoint."),
            col("Available", "string", 0, "Whether this service is available."),
            age,
        ],
        "ConfigMap" => vec![
            name,
            col("Data", "string", 0, "Number of data entries."),
            age,
        ],
        "Secret" => vec![
            name,
            col("Type", "string", 0, "The type of the secret"),
            col("Data", "string", 0, "Number of data entries."),
            age,
        ],
        "ServiceAccount" => vec![name, col("Secrets", "string", 0, "Number of secrets."), age],
        "Event" => vec![
            col("Last Seen", "string", 0, "Time when last event was seen."),
            col("Type", "string", 0, "Type of this event."),
            col("Reason", "string", 0, "Reason of this event."),
            col("Object", "string", 0, "Object this event is about."),
            col("Message", "string", 0, "Message of this event."),
        ],
        "Lease" => vec![
            name,
            col("Holder", "string", 0, "Holder of the lease."),
            age,
        ],
        "PersistentVolumeClaim" => vec![
            name,
            col("Status", "string", 0, "The phase of the claim."),
            col("Volume", "string", 0, "The volume bound to the claim."),
            col("Capacity", "string", 0, "The capacity of the bound volume."),
            col("Access Modes", "string", 0, "The access modes of the bound volume."),
            col("StorageClass", "string", 0, "The storage class of the claim."),
            col("VolumeAttributesClass", "string", 0, "The volume attributes class of the claim."),
            age,
            col("VolumeMode", "string", 1, "How the volume is used: Filesystem or Block."),
        ],
        "PersistentVolume" => vec![
            name,
            col("Capacity", "string", 0, "The capacity of the volume."),
            col("Access Modes", "string", 0, "The access modes of the volume."),
            col("Reclaim Policy", "string", 0, "What happens to the volume when its claim goes."),
            col("Status", "string", 0, "The phase of the volume."),
            col("Claim", "string", 0, "The claim bound to the volume."),
            col("StorageClass", "string", 0, "The storage class of the volume."),
            col("VolumeAttributesClass", "string", 0, "The volume attributes class of the volume."),
            col("Reason", "string", 0, "Why the volume is in its phase."),
            age,
            col("VolumeMode", "string", 1, "How the volume is used: Filesystem or Block."),
        ],
        "StorageClass" => vec![
            name,
            col("Provisioner", "string", 0, "The provisioner of the class."),
            col("ReclaimPolicy", "string", 0, "What happens to volumes of the class when their claims go."),
            col("VolumeBindingMode", "string", 0, "When volumes of the class are bound."),
            col("AllowVolumeExpansion", "string", 0, "Whether volumes of the class may grow."),
            age,
        ],
        "Role" | "ClusterRole" | "LimitRange" | "CustomResourceDefinition" => vec![
            name,
            col("Created At", "date", 0, "Time when the object was created."),
        ],
        "RoleBinding" | "ClusterRoleBinding" => vec![
            name,
            col("Role", "string", 0, "The role being bound to."),
            age,
            col("Users", "string", 1, "Users in the binding."),
            col("Groups", "string", 1, "Groups in the binding."),
            col("ServiceAccounts", "string", 1, "Service accounts in the binding."),
        ],
        "RuntimeClass" => vec![
            name,
            col("Handler", "string", 0, "The handler of the runtime class."),
            age,
        ],
        "PriorityClass" => vec![
            name,
            col("Value", "integer", 0, "The value of this priority class."),
            col("Global-Default", "boolean", 0, "Whether this is the default priority class."),
            age,
            col("PreemptionPolicy", "string", 0, "The preemption policy of this priority class."),
        ],
        "PodDisruptionBudget" => vec![
            name,
            col("Min Available", "string", 0, "The minimum number of pods that must be available."),
            col("Max Unavailable", "string", 0, "The maximum number of pods that may be unavailable."),
            col("Allowed Disruptions", "integer", 0, "The number of pods that may be disrupted now."),
            age,
        ],
        "Ingress" => vec![
            name,
            col("Class", "string", 0, "The name of the IngressClass."),
            col("Hosts", "string", 0, "Hosts that incoming requests are matched against."),
            col("Address", "string", 0, "Address is a list of IPs of the load balancer."),
            col("Ports", "string", 0, "Ports of the load balancer."),
            age,
        ],
        "IngressClass" => vec![
            name,
            col("Controller", "string", 0, "The controller that implements the class."),
            col("Parameters", "string", 0, "Parameters of the controller."),
            age,
        ],
        "NetworkPolicy" => vec![
            name,
            col("Pod-Selector", "string", 0, "The pods the policy applies to."),
            age,
        ],
        _ => vec![name, age],
    }
}

/// `kind/name` of a reference such as a RoleBinding's `roleRef`.
fn reference(o: &Value, pointer: &str) -> String {
    format!(
        "{}/{}",
        str_at(o, &format!("{pointer}/kind")).unwrap_or_default(),
        str_at(o, &format!("{pointer}/name")).unwrap_or_default()
    )
}

/// A quantity that may be an integer or a string (`intOrString`).
fn int_or_string(o: &Value, pointer: &str) -> String {
    match o.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    }
}

/// The cells of one row.
pub fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let name = json!(str_at(o, "/metadata/name").unwrap_or_default());
    let age = json!(age(o, "/metadata/creationTimestamp"));
    let s = |v: String| json!(v);
    match kind {
        "Pod" => {
            let statuses = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = o
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready") == Some(&json!(true)))
                .count();
            let restarts: i64 = statuses.iter().map(|c| int(c, "/restartCount")).sum();
            let last_restart = statuses
                .iter()
                .filter_map(|c| str_at(c, "/lastState/terminated/finishedAt").and_then(parse_time))
                .max();
            let restarts = match last_restart {
                Some(t) if restarts > 0 => format!(
                    "{restarts} ({} ago)",
                    human_duration((jiff::Timestamp::now() - t).get_seconds())
                ),
                _ => restarts.to_string(),
            };
            vec![
                name,
                s(format!("{ready}/{total}")),
                s(pod_status(o)),
                s(restarts),
                age,
                s(str_at(o, "/status/podIP").unwrap_or("<none>").into()),
                s(str_at(o, "/spec/nodeName").unwrap_or("<none>").into()),
                s(str_at(o, "/status/nominatedNodeName")
                    .unwrap_or("<none>")
                    .into()),
                s("<none>".into()),
            ]
        }
        "Node" => {
            let ready = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("type") == Some(&json!("Ready")))
                        .map(|c| c.get("status") == Some(&json!("True")))
                });
            let mut status = match ready {
                Some(true) => "Ready",
                Some(false) | None => "NotReady",
            }
            .to_string();
            if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
                status.push_str(",SchedulingDisabled");
            }
            let addr = |t: &str| {
                let a: Vec<String> = o
                    .pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter(|a| a.get("type") == Some(&json!(t)))
                    .filter_map(|a| str_at(a, "/address").map(String::from))
                    .collect();
                if a.is_empty() {
                    "<none>".to_string()
                } else {
                    a.join(",")
                }
            };
            let roles: Vec<String> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.keys()
                        .filter_map(|k| {
                            k.strip_prefix("node-role.kubernetes.io/").map(String::from)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let info = |k: &str| {
                s(str_at(o, &format!("/status/nodeInfo/{k}"))
                    .unwrap_or("<unknown>")
                    .into())
            };
            vec![
                name,
                s(status),
                s(join_or_none(roles)),
                age,
                info("kubeletVersion"),
                s(addr("InternalIP")),
                s(addr("ExternalIP")),
                info("osImage"),
                info("kernelVersion"),
                info("containerRuntimeVersion"),
            ]
        }
        "Deployment" => {
            let (cn, ci) = containers(o, "/spec/template/spec/containers");
            vec![
                name,
                s(format!(
                    "{}/{}",
                    int(o, "/status/readyReplicas"),
                    int(o, "/spec/replicas")
                )),
                json!(int(o, "/status/updatedReplicas")),
                json!(int(o, "/status/availableReplicas")),
                age,
                s(cn),
                s(ci),
                s(selector_string(o.pointer("/spec/selector"))),
            ]
        }
        "ReplicaSet" | "ReplicationController" => {
            let (cn, ci) = containers(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(int(o, "/spec/replicas")),
                json!(int(o, "/status/replicas")),
                json!(int(o, "/status/readyReplicas")),
                age,
                s(cn),
                s(ci),
                s(selector_string(o.pointer("/spec/selector"))),
            ]
        }
        "ResourceQuota" => {
            // `used/hard` per resource, limits apart from the rest, sorted.
            let hard = o.pointer("/status/hard").and_then(Value::as_object);
            let (mut request, mut limit) = (Vec::new(), Vec::new());
            for (k, h) in hard.into_iter().flatten() {
                let u = o
                    .pointer(&format!("/status/used/{}", k.replace('/', "~1")))
                    .and_then(Value::as_str)
                    .unwrap_or("0");
                let entry = format!("{k}: {u}/{}", h.as_str().unwrap_or_default());
                if k.starts_with("limits.") {
                    limit.push(entry)
                } else {
                    request.push(entry)
                }
            }
            vec![name, age, s(request.join(", ")), s(limit.join(", "))]
        }
        "ControllerRevision" => {
            let controller = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| refs.iter().find(|r| r["controller"] == json!(true)))
                .map_or("<none>".to_string(), |r| {
                    let group = r["apiVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .split('/')
                        .next()
                        .unwrap_or_default();
                    let kind = r["kind"].as_str().unwrap_or_default().to_lowercase();
                    format!("{kind}.{group}/{}", r["name"].as_str().unwrap_or_default())
                });
            vec![name, s(controller), json!(int(o, "/revision")), age]
        }
        "StatefulSet" => {
            let (cn, ci) = containers(o, "/spec/template/spec/containers");
            let ready = format!(
                "{}/{}",
                int(o, "/status/readyReplicas"),
                int(o, "/spec/replicas")
            );
            vec![name, s(ready), age, s(cn), s(ci)]
        }
        "DaemonSet" => {
            let (cn, ci) = containers(o, "/spec/template/spec/containers");
            let node_selector = o
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
                .map_or("<none>".to_string(), |m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                });
            vec![
                name,
                json!(int(o, "/status/desiredNumberScheduled")),
                json!(int(o, "/status/currentNumberScheduled")),
                json!(int(o, "/status/numberReady")),
                json!(int(o, "/status/updatedNumberScheduled")),
                json!(int(o, "/status/numberAvailable")),
                s(node_selector),
                age,
                s(cn),
                s(ci),
                s(selector_string(o.pointer("/spec/selector"))),
            ]
        }
        "CronJob" => {
            let (cn, ci) = containers(o, "/spec/jobTemplate/spec/template/spec/containers");
            let last = match str_at(o, "/status/lastScheduleTime") {
                Some(_) => age_of(o, "/status/lastScheduleTime"),
                None => "<none>".into(),
            };
            vec![
                name,
                s(str_at(o, "/spec/schedule").unwrap_or_default().into()),
                s(str_at(o, "/spec/timeZone").unwrap_or("<none>").into()),
                json!(o.pointer("/spec/suspend") == Some(&json!(true))),
                json!(
                    o.pointer("/status/active")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                ),
                s(last),
                age,
                s(cn),
                s(ci),
                s(selector_string(
                    o.pointer("/spec/jobTemplate/spec/selector"),
                )),
            ]
        }
        "Job" => {
            let (cn, ci) = containers(o, "/spec/template/spec/containers");
            vec![
                name,
                s(job_status(o).into()),
                s(job_completions(o)),
                s(job_duration(o)),
                age,
                s(cn),
                s(ci),
                s(selector_string(o.pointer("/spec/selector"))),
            ]
        }
        "Service" => {
            let ports: Vec<String> = o
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    let proto = str_at(p, "/protocol").unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(n) => format!("{}:{n}/{proto}", int(p, "/port")),
                        None => format!("{}/{proto}", int(p, "/port")),
                    }
                })
                .collect();
            let ty = str_at(o, "/spec/type").unwrap_or("ClusterIP");
            // As kubectl prints it: the load balancer's addresses and the
            // external IPs; an ExternalName Service's name.
            let mut external: Vec<String> = Vec::new();
            if ty == "LoadBalancer" {
                external.extend(
                    o.pointer("/status/loadBalancer/ingress")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|i| str_at(i, "/ip").or(str_at(i, "/hostname")))
                        .map(String::from),
                );
            }
            external.extend(
                o.pointer("/spec/externalIPs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(String::from),
            );
            let external = match ty {
                "ExternalName" => str_at(o, "/spec/externalName")
                    .unwrap_or("<none>")
                    .to_string(),
                _ if !external.is_empty() => external.join(","),
                "LoadBalancer" => "<pending>".to_string(),
                _ => "<none>".to_string(),
            };
            vec![
                name,
                s(ty.into()),
                s(str_at(o, "/spec/clusterIP").unwrap_or("<none>").into()),
                s(external),
                s(join_or_none(ports)),
                age,
                s(selector_string(o.pointer("/spec/selector"))),
            ]
        }
        "Endpoints" => {
            let mut eps = Vec::new();
            for subset in o
                .get("subsets")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let ports: Vec<i64> = subset
                    .get("ports")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|p| int(p, "/port"))
                    .collect();
                for a in subset
                    .get("addresses")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    let ip = str_at(&a, "/ip").unwrap_or_default().to_string();
                    if ports.is_empty() {
                        eps.push(ip.clone())
                    } else {
                        eps.extend(ports.iter().map(|p| format!("{ip}:{p}")))
                    }
                }
            }
            let shown = if eps.len() > 3 {
                format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
            } else {
                join_or_none(eps)
            };
            vec![name, s(shown), age]
        }
        "APIService" => {
            let service = match (
                str_at(o, "/spec/service/namespace"),
                str_at(o, "/spec/service/name"),
            ) {
                (Some(ns), Some(n)) => format!("{ns}/{n}"),
                _ => "Local".to_string(),
            };
            let available = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| str_at(c, "/type") == Some("Available"));
            let available = match available {
                None => "Unknown".to_string(),
                Some(c) if str_at(c, "/status") == Some("True") => "True".to_string(),
                Some(c) => format!(
                    "{} ({})",
                    str_at(c, "/status").unwrap_or("Unknown"),
                    str_at(c, "/reason").unwrap_or_default()
                ),
            };
            vec![name, json!(service), json!(available), age]
        }
        "EndpointSlice" => {
            let ports: Vec<String> = o
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    p.get("port")
                        .and_then(Value::as_i64)
                        .map_or_else(|| "<unset>".to_string(), |n| n.to_string())
                })
                .collect();
            let addresses: Vec<String> = o
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|e| {
                    e.get("addresses")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(String::from)
                })
                .collect();
            let shown = if addresses.len() > 3 {
                format!(
                    "{} + {} more...",
                    addresses[..3].join(","),
                    addresses.len() - 3
                )
            } else {
                join_or_none(addresses)
            };
            vec![
                name,
                s(str_at(o, "/addressType").unwrap_or_default().into()),
                s(if ports.is_empty() {
                    "<unset>".into()
                } else {
                    ports.join(",")
                }),
                s(shown),
                age,
            ]
        }
        "Namespace" => vec![
            name,
            s(str_at(o, "/status/phase").unwrap_or("Active").into()),
            age,
        ],
        "ConfigMap" => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + o.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![name, json!(n.to_string()), age]
        }
        "Secret" => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            vec![
                name,
                s(str_at(o, "/type").unwrap_or("Opaque").into()),
                json!(n.to_string()),
                age,
            ]
        }
        "ServiceAccount" => vec![
            name,
            json!(
                o.get("secrets")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
                    .to_string()
            ),
            age,
        ],
        "Event" => {
            let last = if o.get("lastTimestamp").is_some_and(|v| v.is_string()) {
                age_of(o, "/lastTimestamp")
            } else {
                age_of(o, "/eventTime")
            };
            let obj = format!(
                "{}/{}",
                str_at(o, "/involvedObject/kind")
                    .unwrap_or_default()
                    .to_lowercase(),
                str_at(o, "/involvedObject/name").unwrap_or_default()
            );
            vec![
                s(last),
                s(str_at(o, "/type").unwrap_or_default().into()),
                s(str_at(o, "/reason").unwrap_or_default().into()),
                s(obj),
                s(str_at(o, "/message").unwrap_or_default().into()),
            ]
        }
        "Lease" => vec![
            name,
            s(str_at(o, "/spec/holderIdentity").unwrap_or("<none>").into()),
            age,
        ],
        "PersistentVolumeClaim" => vec![
            name,
            s(str_at(o, "/status/phase").unwrap_or_default().into()),
            s(str_at(o, "/spec/volumeName").unwrap_or_default().into()),
            s(str_at(o, "/status/capacity/storage")
                .unwrap_or_default()
                .into()),
            s(access_modes(o.pointer("/status/accessModes"))),
            s(str_at(o, "/spec/storageClassName")
                .unwrap_or("<unset>")
                .into()),
            s(str_at(o, "/spec/volumeAttributesClassName")
                .unwrap_or("<unset>")
                .into()),
            age,
            s(str_at(o, "/spec/volumeMode").unwrap_or("Filesystem").into()),
        ],
        "PersistentVolume" => {
            let claim = match (
                str_at(o, "/spec/claimRef/namespace"),
                str_at(o, "/spec/claimRef/name"),
            ) {
                (Some(ns), Some(n)) => format!("{ns}/{n}"),
                _ => String::new(),
            };
            vec![
                name,
                s(str_at(o, "/spec/capacity/storage")
                    .unwrap_or_default()
                    .into()),
                s(access_modes(o.pointer("/spec/accessModes"))),
                s(str_at(o, "/spec/persistentVolumeReclaimPolicy")
                    .unwrap_or_default()
                    .into()),
                s(str_at(o, "/status/phase").unwrap_or_default().into()),
                s(claim),
                s(str_at(o, "/spec/storageClassName")
                    .unwrap_or_default()
                    .into()),
                s(str_at(o, "/spec/volumeAttributesClassName")
                    .unwrap_or("<unset>")
                    .into()),
                s(str_at(o, "/status/reason").unwrap_or_default().into()),
                age,
                s(str_at(o, "/spec/volumeMode").unwrap_or("Filesystem").into()),
            ]
        }
        "StorageClass" => {
            let default = str_at(
                o,
                "/metadata/annotations/storageclass.kubernetes.io~1is-default-class",
            ) == Some("true");
            let shown = if default {
                format!("{} (default)", meta_name(o))
            } else {
                meta_name(o)
            };
            vec![
                json!(shown),
                s(str_at(o, "/provisioner").unwrap_or_default().into()),
                s(str_at(o, "/reclaimPolicy").unwrap_or("Delete").into()),
                s(str_at(o, "/volumeBindingMode")
                    .unwrap_or("Immediate")
                    .into()),
                json!(
                    o.get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                age,
            ]
        }
        "Role" | "ClusterRole" | "LimitRange" | "CustomResourceDefinition" => vec![
            name,
            json!(str_at(o, "/metadata/creationTimestamp").unwrap_or_default()),
        ],
        "RoleBinding" | "ClusterRoleBinding" => {
            let subjects = |kind: &str| {
                let names = o
                    .pointer("/subjects")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|x| x.get("kind").and_then(Value::as_str) == Some(kind))
                    .map(|x| match (str_at(x, "/namespace"), str_at(x, "/name")) {
                        (Some(ns), Some(n)) if kind == "ServiceAccount" => format!("{ns}/{n}"),
                        (_, n) => n.unwrap_or_default().to_string(),
                    })
                    .collect::<Vec<_>>();
                json!(names.join(", "))
            };
            vec![
                name,
                s(reference(o, "/roleRef")),
                age,
                subjects("User"),
                subjects("Group"),
                subjects("ServiceAccount"),
            ]
        }
        "RuntimeClass" => vec![
            name,
            s(str_at(o, "/handler").unwrap_or_default().into()),
            age,
        ],
        "PriorityClass" => vec![
            name,
            json!(int(o, "/value")),
            json!(
                o.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age,
            s(str_at(o, "/preemptionPolicy")
                .unwrap_or("PreemptLowerPriority")
                .into()),
        ],
        "PodDisruptionBudget" => vec![
            name,
            s(int_or_string(o, "/spec/minAvailable")),
            s(int_or_string(o, "/spec/maxUnavailable")),
            json!(int(o, "/status/disruptionsAllowed")),
            age,
        ],
        "Ingress" => {
            let hosts: Vec<String> = o
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| str_at(r, "/host").map(String::from))
                .collect();
            let addresses: Vec<String> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    str_at(i, "/ip")
                        .or(str_at(i, "/hostname"))
                        .map(String::from)
                })
                .collect();
            let tls = o
                .pointer("/spec/tls")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty());
            vec![
                name,
                s(str_at(o, "/spec/ingressClassName")
                    .unwrap_or("<none>")
                    .into()),
                s(if hosts.is_empty() {
                    "*".into()
                } else {
                    hosts.join(",")
                }),
                s(addresses.join(",")),
                s(if tls { "80, 443" } else { "80" }.into()),
                age,
            ]
        }
        "IngressClass" => vec![
            name,
            s(str_at(o, "/spec/controller").unwrap_or_default().into()),
            s(match str_at(o, "/spec/parameters/name") {
                Some(_) => reference(o, "/spec/parameters"),
                None => "<none>".into(),
            }),
            age,
        ],
        "NetworkPolicy" => {
            let sel = selector_string(o.pointer("/spec/podSelector"));
            vec![
                name,
                s(if sel == "<none>" {
                    "<none>".into()
                } else {
                    sel
                }),
                age,
            ]
        }
        _ => vec![name, age],
    }
}

/// The Status column of a Job: its first condition of note.
fn job_status(o: &Value) -> &'static str {
    let has = |c: &str| crate::meta::condition_true(o, c);
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

/// `succeeded/completions`, or `succeeded/1 of parallelism` without completions.
fn job_completions(o: &Value) -> String {
    let succeeded = int(o, "/status/succeeded");
    match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int(o, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// From start to completion, or to now while running.
fn job_duration(o: &Value) -> String {
    let Some(start) = str_at(o, "/status/startTime").and_then(parse_time) else {
        return String::new();
    };
    let end = str_at(o, "/status/completionTime")
        .and_then(parse_time)
        .unwrap_or_else(jiff::Timestamp::now);
    human_duration((end - start).get_seconds())
}

fn age_of(o: &Value, p: &str) -> String {
    age(o, p)
}

/// The columns of a custom resource: its definition's printer columns
/// after the name, or the age when it declares none.
fn custom_columns(c: &Custom) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    if c.columns.is_empty() {
        return vec![name, col("Age", "date", 0, "")];
    }
    let mut out = vec![name];
    out.extend(c.columns.iter().map(|k| {
        json!({"name": k.name, "type": k.kind, "format": k.format, "description": k.description, "priority": k.priority})
    }));
    out
}

fn custom_cells(c: &Custom, o: &Value) -> Vec<Value> {
    let name = json!(str_at(o, "/metadata/name").unwrap_or_default());
    if c.columns.is_empty() {
        return vec![name, json!(age(o, "/metadata/creationTimestamp"))];
    }
    let mut out = vec![name];
    out.extend(c.columns.iter().map(|k| {
        let found = jsonpath::select(o, &k.path);
        match (k.kind.as_str(), found.as_slice()) {
            (_, []) => Value::Null,
            ("date", [Value::String(t), ..]) => match parse_time(t) {
                Some(t) => json!(human_duration((jiff::Timestamp::now() - t).get_seconds())),
                None => json!(t),
            },
            (_, [one]) => (*one).clone(),
            (_, many) => json!(
                many.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }));
    out
}

/// One Table row for `obj`; `full` embeds the whole object, otherwise its
/// metadata as PartialObjectMetadata.
fn row(r: &Resource, obj: &Value, full: bool) -> Value {
    let object = if full {
        obj.clone()
    } else {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or_default()})
    };
    let cells = match r.custom {
        Some(c) => custom_cells(c, obj),
        None => cells(r.kind, obj),
    };
    json!({"cells": cells, "object": object})
}

/// A Table of `objs` of resource `r`.
pub fn table(
    r: &Resource,
    objs: &[&Value],
    resource_version: &str,
    cont: Option<&str>,
    full: bool,
    with_columns: bool,
) -> Value {
    let mut meta = json!({"resourceVersion": resource_version});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    let columns = match (with_columns, r.custom) {
        (false, _) => Vec::new(),
        (true, Some(c)) => custom_columns(c),
        (true, None) => columns(r.kind),
    };
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
        "columnDefinitions": columns,
        "rows": objs.iter().map(|o| row(r, o, full)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_kubernetes() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(15 * 60), "15m");
        assert_eq!(human_duration(5 * 3600 + 60), "5h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400), "3d");
    }

    #[test]
    fn pod_status_prefers_waiting_reason() {
        let pod = json!({"status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}]}});
        assert_eq!(pod_status(&pod), "ErrImagePull");
        let gone = json!({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}});
        assert_eq!(pod_status(&gone), "Terminating");
    }
}
