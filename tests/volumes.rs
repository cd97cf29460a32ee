//! Volumes are WASI preopens: a pod sees what its spec mounts and nothing
//! else of the node.

mod common;

use common::{Cluster, example};

#[test]
fn mounted_volumes_and_nothing_else() {
    let c = Cluster::start("volumes");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let host_dir = c.dir.join("host-data");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("note.txt"), "from the node").unwrap();
    std::os::unix::fs::symlink("/etc", host_dir.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", host_dir.join("passwd-link")).unwrap();
    let manifest = c.dir.join("volumes.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: app-config}}
data: {{greeting.txt: "hello from a configmap volume"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: app-secret}}
stringData: {{token: t0ps3cret}}
---
apiVersion: v1
kind: Pod
metadata: {{name: vols, labels: {{app: vols}}}}
spec:
  restartPolicy: Never
  volumes:
  - {{name: config, configMap: {{name: app-config}}}}
  - {{name: secret, secret: {{secretName: app-secret}}}}
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: host, hostPath: {{path: {host}}}}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
  containers:
  - name: main
    image: hello-cmd:v1
    workingDir: /scratch
    volumeMounts:
    - {{name: config, mountPath: /config, readOnly: true}}
    - {{name: secret, mountPath: /secret, readOnly: true}}
    - {{name: scratch, mountPath: /scratch}}
    - {{name: host, mountPath: /host, readOnly: true}}
    - {{name: info, mountPath: /info}}
    env:
    - name: SHOW_FILES
      value: /config/greeting.txt,/secret/token,/host/note.txt,/info/labels,/etc/passwd,/config/../../../etc/passwd,/host/etc-link/passwd,/host/passwd-link
    - name: WRITE_FILES
      value: /scratch/out.txt,/config/new.txt,/host/new.txt,relative.txt,/tmp/x
    - {{name: SHOW_CWD, value: "1"}}
"#,
            host = host_dir.display()
        ),
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let logs = c.wait_for(&["logs", "vols"], "the file report", |o| {
        o.contains("write /tmp/x")
    });
    let line = |prefix: &str| {
        logs.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in:\n{logs}"))
            .to_string()
    };
    assert_eq!(
        line("read /config/greeting.txt"),
        "read /config/greeting.txt: hello from a configmap volume"
    );
    assert_eq!(line("read /secret/token"), "read /secret/token: t0ps3cret");
    assert_eq!(
        line("read /host/note.txt"),
        "read /host/note.txt: from the node"
    );
    assert_eq!(line("read /info/labels"), "read /info/labels: app=\"vols\"");
    assert!(line("read /etc/passwd:").contains("error"), "{logs}");
    assert!(
        line("read /config/../../../etc/passwd").contains("error"),
        "{logs}"
    );
    for link in ["/host/etc-link/passwd", "/host/passwd-link"] {
        assert!(
            line(&format!("read {link}:")).contains("error"),
            "a symlink out of the volume: {logs}"
        );
    }
    assert_eq!(line("write /scratch/out.txt"), "write /scratch/out.txt: ok");
    assert_eq!(line("write relative.txt"), "write relative.txt: ok");
    let written = find_file(&c.dir, "relative.txt").expect("relative.txt on the node");
    assert!(
        written.parent().unwrap().join("out.txt").exists(),
        "a relative path lands in the workingDir's volume: {}",
        written.display()
    );
    assert!(
        line("write /config/new.txt").contains("error"),
        "read-only mount: {logs}"
    );
    assert!(
        line("write /host/new.txt").contains("error"),
        "read-only mount: {logs}"
    );
    assert!(line("write /tmp/x").contains("error"), "{logs}");
    assert!(!host_dir.join("new.txt").exists());

    let bad = c.dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Pod\nmetadata: {name: nocm}\nspec:\n  volumes:\n  - {name: c, configMap: {name: nope}}\n  containers:\n  - {name: main, image: hello-cmd:v1, volumeMounts: [{name: c, mountPath: /c}]}\n").unwrap();
    c.ok(&["apply", "-f", bad.to_str().unwrap()]);
    let d = c.wait_for(&["describe", "pod", "nocm"], "mount failure", |o| {
        o.contains("CreateContainerConfigError")
    });
    assert!(d.contains("configmap \"nope\" not found"), "{d}");
}

fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let ty = entry.file_type().ok()?;
        if ty.is_file() && entry.file_name() == name {
            return Some(path);
        }
        if ty.is_dir()
            && let Some(found) = find_file(&path, name)
        {
            return Some(found);
        }
    }
    None
}

#[test]
fn empty_dir_limits_and_host_path_types() {
    let c = Cluster::start("emptydir");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let manifest = c.dir.join("limits.yaml");
    let pod = |name: &str, volume: &str, fill: &str| {
        format!(
            r#"---
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  volumes: [{{name: v, {volume}}}]
  containers:
  - name: main
    image: hello-cmd:v1
    volumeMounts: [{{name: v, mountPath: /v}}]
    env: [{{name: FILL, value: "{fill}"}}]
"#
        )
    };
    let two_mib = "/v/big:2097152";
    let yaml = [
        pod("mem", "emptyDir: {medium: Memory, sizeLimit: 1Mi}", two_mib),
        pod("disk", "emptyDir: {sizeLimit: 1Mi}", two_mib),
        pod("roomy", "emptyDir: {sizeLimit: 4Mi}", two_mib),
        pod("file", "hostPath: {path: /etc/hostname, type: File}", ""),
    ]
    .concat();
    std::fs::write(&manifest, yaml).unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);

    // Memory-backed: a tmpfs of the limit's size, so the write itself fails.
    let logs = c.wait_for(&["logs", "mem"], "the fill report", |o| {
        o.contains("fill /v/big")
    });
    assert!(
        logs.contains("fill /v/big: error"),
        "a 2 MiB write into a 1 MiB Memory emptyDir: {logs}"
    );
    let uid = c.ok(&["get", "pod", "mem", "-o", "jsonpath={.metadata.uid}"]);
    let tmpfs_mounted = || {
        std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .any(|l| l.contains(uid.trim()) && l.contains(" tmpfs "))
    };
    assert!(tmpfs_mounted(), "the Memory emptyDir is a tmpfs");

    // Disk-backed: the write succeeds and the pod is evicted.
    let status = c.wait_for(
        &[
            "get",
            "pod",
            "disk",
            "-o",
            "jsonpath={.status.phase}/{.status.reason}",
        ],
        "the eviction",
        |o| o == "Failed/Evicted",
    );
    assert_eq!(status, "Failed/Evicted");
    let described = c.ok(&["describe", "pod", "disk"]);
    assert!(
        described.contains("Usage of EmptyDir volume \"v\" exceeds the limit"),
        "{described}"
    );
    let roomy = c.ok(&["get", "pod", "roomy", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(roomy, "Running", "a pod under its limit keeps running");

    let file = c.wait_for(&["describe", "pod", "file"], "the mount failure", |o| {
        o.contains("FailedMount")
    });
    assert!(file.contains("directories only"), "{file}");

    c.ok(&["delete", "pod", "mem", "--wait=true"]);
    assert!(!tmpfs_mounted(), "the tmpfs is unmounted with its pod");
}
