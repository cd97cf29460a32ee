//! The decoder against k8s-pb, an independent encoder generated from
//! Kubernetes' .proto files.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::json;

use super::*;

fn body(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [MAGIC, &unknown.encode_to_vec()].concat()
}

fn s(v: &str) -> Option<String> {
    Some(v.into())
}

fn meta(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        // What Go sends for fields it has no value for.
        namespace: s(""),
        resource_version: s(""),
        creation_timestamp: Some(meta::Time {
            seconds: Some(ZERO_TIME_SECONDS),
            nanos: Some(0),
        }),
        ..Default::default()
    })
}

#[test]
fn config_maps_and_secrets_keep_their_data() {
    let cm = core::ConfigMap {
        metadata: meta("settings"),
        data: [
            ("mode".to_string(), "fast".to_string()),
            ("empty".into(), String::new()),
        ]
        .into(),
        binary_data: [("blob".to_string(), vec![0u8, 159, 146, 150])].into(),
        immutable: Some(false),
    };
    let got = decode(&body("v1", "ConfigMap", &cm)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"mode": "fast", "empty": ""},
            "binaryData": {"blob": "AJ+Slg=="},
            "immutable": false,
        })
    );

    let secret = core::Secret {
        metadata: meta("token"),
        data: [("password".to_string(), b"hunter2".to_vec())].into(),
        r#type: s("Opaque"),
        ..Default::default()
    };
    let got = decode(&body("v1", "Secret", &secret)).unwrap();
    assert_eq!(got["data"]["password"], "aHVudGVyMg==");
    assert_eq!(got["type"], "Opaque");
}

#[test]
fn deployments_keep_zeros_embedded_structs_and_special_types() {
    let container = core::Container {
        name: s("web"),
        image: s("registry.example/web:v1"),
        ports: vec![core::ContainerPort {
            container_port: Some(8080),
            protocol: s("TCP"),
            ..Default::default()
        }],
        env: vec![core::EnvVar {
            name: s("MODE"),
            value_from: Some(core::EnvVarSource {
                config_map_key_ref: Some(core::ConfigMapKeySelector {
                    local_object_reference: Some(core::LocalObjectReference {
                        name: s("settings"),
                    }),
                    key: s("mode"),
                    optional: Some(true),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        resources: Some(core::ResourceRequirements {
            limits: [("memory".to_string(), Quantity { string: s("64Mi") })].into(),
            ..Default::default()
        }),
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("http"),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        args: vec!["--verbose".into(), "".into()],
        ..Default::default()
    };
    let labels: std::collections::BTreeMap<String, String> =
        [("app".to_string(), "web".to_string())].into();
    let deploy = apps::Deployment {
        metadata: meta("web"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: labels.clone(),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels,
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    enable_service_links: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(0),
                        str_val: s(""),
                    }),
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("25%"),
                    }),
                }),
            }),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus::default()),
    };
    let got = decode(&body("apps/v1", "Deployment", &deploy)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "registry.example/web:v1",
                            "args": ["--verbose", ""],
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [{
                                "name": "MODE",
                                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode", "optional": true}},
                            }],
                            "resources": {"limits": {"memory": "64Mi"}},
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 5,
                            },
                        }],
                        "enableServiceLinks": false,
                    },
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
                },
            },
            "status": {},
        })
    );
}

#[test]
fn times_and_embedded_objects_decode() {
    let event = core::Event {
        metadata: meta("e1"),
        first_timestamp: Some(meta::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(0),
        }),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_000),
        }),
        count: Some(3),
        ..Default::default()
    };
    let got = decode(&body("v1", "Event", &event)).unwrap();
    assert_eq!(got["firstTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(got["eventTime"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(got["count"], 3);

    // A ControllerRevision's data is a RawExtension: JSON, or another envelope.
    let inner = body(
        "v1",
        "ConfigMap",
        &core::ConfigMap {
            metadata: meta("nested"),
            ..Default::default()
        },
    );
    for (raw, want) in [
        (br#"{"spec":{"x":1}}"#.to_vec(), json!({"spec": {"x": 1}})),
        (
            inner,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nested"}}),
        ),
    ] {
        let rev = apps::ControllerRevision {
            metadata: meta("r1"),
            data: Some(RawExtension { raw: Some(raw) }),
            revision: Some(2),
        };
        let got = decode(&body("apps/v1", "ControllerRevision", &rev)).unwrap();
        assert_eq!(got["data"], want);
        assert_eq!(got["revision"], 2);
    }
}

#[test]
fn bad_bodies_are_errors() {
    let good = body(
        "v1",
        "ConfigMap",
        &core::ConfigMap {
            metadata: meta("x"),
            ..Default::default()
        },
    );
    let err = |b: &[u8]| decode(b).unwrap_err();
    assert!(err(&good[4..]).contains("magic"));
    assert!(err(&good[..good.len() - 3]).contains("ends early"));
    let unknown_kind = body("v1", "Gadget", &core::ConfigMap::default());
    assert!(err(&unknown_kind).contains("\"Gadget\""));
    // A string field sent as a varint.
    let mut wrong = MAGIC.to_vec();
    wrong.extend(
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: s("v1"),
                kind: s("ConfigMap"),
            }),
            raw: Some(vec![0x0a, 0x02, 0x08, 0x01]), // metadata { name: varint 1 }
            ..Default::default()
        }
        .encode_to_vec(),
    );
    assert!(
        err(&wrong).contains("metadata: name: wire type 0"),
        "{}",
        err(&wrong)
    );
    // Invalid UTF-8 in a string.
    let cm = core::ConfigMap {
        data: [("k".to_string(), "v".to_string())].into(),
        ..Default::default()
    };
    let mut bytes = body("v1", "ConfigMap", &cm);
    let at = bytes.iter().rposition(|&b| b == b'v').unwrap();
    bytes[at] = 0xff;
    assert!(err(&bytes).contains("UTF-8"));
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let mut raw = br#"{}"#.to_vec();
    for _ in 0..200 {
        let rev = apps::ControllerRevision {
            data: Some(RawExtension { raw: Some(raw) }),
            ..Default::default()
        };
        raw = body("apps/v1", "ControllerRevision", &rev);
    }
    assert!(decode(&raw).unwrap_err().contains("nested deeper"));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let good = body(
        "apps/v1",
        "Deployment",
        &apps::Deployment {
            metadata: meta("web"),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(3),
                ..Default::default()
            }),
            status: None,
        },
    );
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % b.len();
            b[i] = next() as u8;
        }
        b.truncate(4 + (next() as usize) % b.len());
        let _ = decode(&b);
    }
}

#[test]
fn durations_print_as_go_does() {
    for (nanos, want) in [
        (0, "0s"),
        (1_500, "1.5µs"),
        (250_000_000, "250ms"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (-5_000_000_000, "-5s"),
    ] {
        assert_eq!(go_duration(nanos), want);
    }
}

#[test]
fn omitted_zeros_name_real_fields() {
    for (message, fields) in OMIT_ZERO {
        let Some(Message::Fields { by_tag: known, .. }) = SCHEMA.messages.get(message) else {
            panic!("{message} is not in the schema");
        };
        for f in *fields {
            assert!(
                known.values().any(|k| k.json == Some(f)),
                "{message} has no field {f}"
            );
        }
    }
    let port = core::ContainerPort {
        container_port: Some(80),
        host_port: Some(0),
        ..Default::default()
    };
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            generation: Some(0),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                ports: vec![port],
                tty: Some(false),
                ..Default::default()
            }],
            host_network: Some(false),
            automount_service_account_token: Some(false),
            ..Default::default()
        }),
        status: None,
    };
    let got = decode(&body("v1", "Pod", &pod)).unwrap();
    assert_eq!(got["metadata"], json!({}));
    assert_eq!(
        got["spec"],
        json!({"containers": [{"ports": [{"containerPort": 80}]}], "automountServiceAccountToken": false})
    );
}
