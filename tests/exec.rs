//! `kubectl exec` and `kubectl cp` into a Wasm pod: commands run as new
//! instances in the pod's sandbox (its volumes and environment, nothing
//! else), with stdin, a terminal, exit codes and files both ways; the same
//! through the Python client's WebSocket streams. `kubectl attach` to a
//! running container's output and stdin.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{Cluster, example, example_file};

const POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: box}
spec:
  containers:
  - name: main
    image: hello-cmd:v1
    env: [{name: GREETING, value: hello from the pod}]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
";

const DONE: &str = "apiVersion: v1
kind: Pod
metadata: {name: done}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: hello-cmd:v1
    env: [{name: COUNT, value: '1'}]
";

/// kubectl with `input` on its stdin.
fn kubectl_with_input(c: &Cluster, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &c.kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn exec_and_cp_work_in_a_wasm_pod() {
    let c = Cluster::start("exec");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let manifest = c.dir.join("box.yaml");
    std::fs::write(&manifest, POD).unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.wait_for(&["get", "pod", "box"], "box running", |o| {
        o.contains("Running")
    });

    // Output, the pod's environment and volume, exit codes.
    assert_eq!(c.ok(&["exec", "box", "--", "echo", "hi"]), "hi\n");
    let out = c.kubectl(&[
        "exec",
        "box",
        "--",
        "sh",
        "-c",
        "echo \"$GREETING\" > /data/g && cat /data/g | wc -c; echo to stderr >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "19");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("to stderr"), "{stderr}");
    assert!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );
    // Nothing of the node is visible: only what the pod mounts.
    let out = c.kubectl(&["exec", "box", "--", "cat", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = c.kubectl(&["exec", "box", "--", "ls", "/data"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "g\n");

    // An unknown command: 127 and the runtime's words.
    let out = c.kubectl(&["exec", "box", "--", "bash"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("executable file not found"), "{stderr}");

    // stdin, to its end.
    let lines: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    let out = kubectl_with_input(
        &c,
        &["exec", "-i", "box", "--", "wc", "-l"],
        lines.as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2000");
    let out = kubectl_with_input(
        &c,
        &[
            "exec",
            "-i",
            "box",
            "--",
            "sh",
            "-c",
            "cat > /data/in; grep -c 9 /data/in",
        ],
        lines.as_bytes(),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "542",
        "{out:?}"
    );

    // A terminal: kubectl -it under a pseudo-terminal of its own.
    let typed = "(sleep 2; printf 'echo typed\\r'; sleep 1; printf 'exit 4\\r'; sleep 1)";
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{typed} | script -qec 'kubectl exec -it box -- sh' /dev/null"
        ))
        .env("KUBECONFIG", &c.kubeconfig)
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("# echo typed\r\ntyped\r\n"), "{screen:?}");
    assert_eq!(out.status.code(), Some(4), "{screen:?}");

    // kubectl cp both ways: a tree with a binary file.
    let src = c.dir.join("tree");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "one\n").unwrap();
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(src.join("sub/blob.bin"), &blob).unwrap();
    c.ok(&["cp", src.to_str().unwrap(), "box:/data/tree"]);
    assert_eq!(
        c.ok(&["exec", "box", "--", "cat", "/data/tree/a.txt"]),
        "one\n"
    );
    let back = c.dir.join("back");
    c.ok(&["cp", "box:/data/tree", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(back.join("a.txt")).unwrap(), b"one\n");
    assert_eq!(std::fs::read(back.join("sub/blob.bin")).unwrap(), blob);

    // A finished pod cannot be entered; a missing container is named.
    let done = c.dir.join("done.yaml");
    std::fs::write(&done, DONE).unwrap();
    c.ok(&["apply", "-f", done.to_str().unwrap()]);
    c.wait_for(&["get", "pod", "done"], "done completed", |o| {
        o.contains("Completed")
    });
    let err = c.fails(&["exec", "done", "--", "ls"]);
    assert!(
        err.contains("cannot exec into a container in a completed pod"),
        "{err}"
    );
    let err = c.fails(&["exec", "box", "-c", "nope", "--", "ls"]);
    assert!(
        err.contains("container nope is not valid for pod box"),
        "{err}"
    );

    // The Python client's WebSocket streams (v4.channel.k8s.io).
    let out = Command::new("python3")
        .arg(common::repo().join("tests/support/python_exec.py"))
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("python exec: ok"),
        "{text}"
    );
}

#[test]
fn exec_reaches_an_http_pods_sandbox() {
    let c = Cluster::start("exec-http");
    c.import(&example_file("hello-http/hello-http.wasm"), "hello-http:v1");
    let manifest = c.dir.join("web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: web\n    image: hello-http:v1\n    env: [{name: WHO, value: web}]\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.wait_for(&["get", "pod", "web"], "web running", |o| {
        o.contains("Running")
    });
    assert_eq!(c.ok(&["exec", "web", "--", "printenv", "WHO"]), "web\n");
    // The component itself (argv[0] is the container's name) serves; it is
    // not a command.
    let err = c.fails(&["exec", "web", "--", "web"]);
    assert!(err.contains("HTTP component"), "{err}");
}

#[test]
fn attach_reaches_a_running_containers_streams() {
    let c = Cluster::start("attach");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    // The toolbox every node carries, as a container's image.
    let runtime = c.ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].status.nodeInfo.containerRuntimeVersion}",
    ]);
    let version = runtime.rsplit('/').next().unwrap().to_string();
    let manifest = c.dir.join("attach.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: shell}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: sh\n    image: shoal.dev/toolbox:{version}\n    command: [sh]\n    stdin: true\n    stdinOnce: true\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: talker}}\nspec:\n  containers:\n  - name: main\n    image: hello-cmd:v1\n"
        ),
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/shell",
        "pod/talker",
        "--timeout=60s",
    ]);

    // Output as it is written.
    let out = Command::new("timeout")
        .args(["5", "kubectl", "attach", "talker"])
        .env("KUBECONFIG", &c.kubeconfig)
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(seen.contains("hello from a wasm pod #"), "{out:?}");

    // stdin: a shell reading what the client sends; stdinOnce ends it
    // with the client's input.
    let out = kubectl_with_input(
        &c,
        &["attach", "-i", "shell"],
        b"echo attached to $HOSTNAME\n",
    );
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(seen.contains("attached to shell"), "{out:?}");
    c.wait_for(&["get", "pod", "shell"], "the shell to end", |o| {
        o.contains("Completed") || o.contains("Error")
    });
    // An HTTP component has nothing to attach to.
    c.import(&example_file("hello-http/hello-http.wasm"), "hello-http:v1");
    let web = c.dir.join("web.yaml");
    std::fs::write(
        &web,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: web, image: hello-http:v1}\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", web.to_str().unwrap()]);
    c.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
    let err = c.fails(&["attach", "web"]);
    assert!(err.contains("HTTP component"), "{err}");
}

#[test]
fn kubectl_debug_adds_the_toolbox_to_a_running_pod() {
    let c = Cluster::start("debug");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let manifest = c.dir.join("box.yaml");
    std::fs::write(&manifest, POD).unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.ok(&["wait", "--for=condition=Ready", "pod/box", "--timeout=60s"]);
    c.ok(&["exec", "box", "--", "sh", "-c", "echo kept > /data/note"]);
    let runtime = c.ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].status.nodeInfo.containerRuntimeVersion}",
    ]);
    let image = format!(
        "--image=shoal.dev/toolbox:{}",
        runtime.rsplit('/').next().unwrap()
    );
    // An ephemeral container aimed at `main` sees its volumes.
    let out = kubectl_with_input(
        &c,
        &[
            "debug",
            "box",
            "-i",
            &image,
            "--target=main",
            "--container=dbg",
            "--",
            "sh",
        ],
        b"cat /data/note; echo debugged\nexit\n",
    );
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        seen.contains("kept") && seen.contains("debugged"),
        "{out:?}"
    );
    let names = c.ok(&[
        "get",
        "pod",
        "box",
        "-o",
        "jsonpath={.spec.ephemeralContainers[*].name}/{.status.ephemeralContainerStatuses[*].name}",
    ]);
    assert_eq!(names, "dbg/dbg");
    // They may only be added, not changed.
    let pod = c.ok(&["get", "pod", "box", "-o", "json"]);
    let mut pod: serde_json::Value = serde_json::from_str(&pod).unwrap();
    pod["spec"]["ephemeralContainers"][0]["image"] = "hello-cmd:v1".into();
    let changed = c.dir.join("changed.json");
    std::fs::write(&changed, pod.to_string()).unwrap();
    let err = c.fails(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/default/pods/box/ephemeralcontainers",
        "-f",
        changed.to_str().unwrap(),
    ]);
    assert!(
        err.contains("existing ephemeral containers \"dbg\" may not be changed"),
        "{err}"
    );
    // The pod's own container still runs, untouched.
    let started = c.ok(&[
        "get",
        "pod",
        "box",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.running.startedAt}",
    ]);
    assert!(!started.is_empty());
}
