//! Images pulled from a real OCI registry (Debian's `docker-registry`,
//! started here on loopback) in both Wasm formats, with and without
//! authentication, and the failures a registry can cause.

mod common;

use std::process::Command;

use common::registry::Registry;
use common::{Cluster, example, free_port};

fn run(c: &Cluster, name: &str, image: &str, extra: &[&str]) {
    let mut args = vec!["run", name, "--image", image, "--restart=Never"];
    args.extend_from_slice(extra);
    c.ok(&args);
}

#[test]
fn pulls_wasm_artifacts_and_images() {
    let c = Cluster::start("registry");
    let reg = Registry::start(&c.dir, None);
    let wasm = example("hello-cmd");
    reg.push("wasm/hello-cmd:v1", &wasm, &[]);
    reg.push("runwasi/hello-cmd:v1", &wasm, &["--format", "wasm-layer"]);
    reg.push("container/hello-cmd:v1", &wasm, &["--format", "container"]);

    for (pod, repo_tag, greeting) in [
        ("artifact", "wasm/hello-cmd:v1", "hello from a wasm pod"),
        ("runwasi", "runwasi/hello-cmd:v1", "hello from a wasm pod"),
        // Tar layers; the image config's Env reaches the guest.
        (
            "container",
            "container/hello-cmd:v1",
            "hello from the image config",
        ),
    ] {
        run(&c, pod, &format!("{}/{repo_tag}", reg.addr), &[]);
        let logs = c.wait_for(&["logs", pod], "output of the pulled module", |o| {
            o.contains("#1")
        });
        assert!(logs.starts_with(&format!("{greeting} #1")), "{logs}");
        let events = c.ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod}"),
        ]);
        assert!(
            events.contains("Pulling") && events.contains("Successfully pulled image"),
            "{events}"
        );
    }

    run(&c, "absent", &format!("{}/wasm/absent:v1", reg.addr), &[]);
    let d = c.wait_for(&["describe", "pod", "absent"], "pull failure", |o| {
        o.contains("ErrImagePull") || o.contains("ImagePullBackOff")
    });
    assert!(d.contains("wasm/absent:v1"), "{d}");

    // A registry that serves content not matching its digest.
    reg.push("wasm/tampered:v1", &wasm, &[]);
    let blobs = reg.root.join("data/docker/registry/v2/blobs/sha256");
    let digest = format!("{:x}", sha256_of(&std::fs::read(&wasm).unwrap()));
    let data = blobs.join(&digest[..2]).join(&digest).join("data");
    std::fs::write(&data, b"\0asm\x01\0\0\0 not what the digest says").unwrap();
    run(
        &c,
        "tampered",
        &format!("{}/wasm/tampered:v1", reg.addr),
        &[],
    );
    let d = c.wait_for(&["describe", "pod", "tampered"], "digest failure", |o| {
        o.contains("ErrImagePull") || o.contains("ImagePullBackOff")
    });
    assert!(d.to_lowercase().contains("digest"), "{d}");

    // A registry that is down.
    let down = format!("127.0.0.1:{}", free_port());
    run(&c, "down", &format!("{down}/wasm/hello-cmd:v1"), &[]);
    let d = c.wait_for(&["describe", "pod", "down"], "pull failure", |o| {
        o.contains("ErrImagePull") || o.contains("ImagePullBackOff")
    });
    assert!(d.contains(&down), "{d}");

    let steady = c.ok(&["get", "pod", "artifact", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(steady, "Running", "the node keeps running its other pods");
}

#[test]
fn pulls_with_image_pull_secrets() {
    let c = Cluster::start("registry-auth");
    let htpasswd = c.dir.join("htpasswd");
    let hash = Command::new("python3")
        .args([
            "-c",
            "import bcrypt; print(bcrypt.hashpw(b'wasm-pass', bcrypt.gensalt()).decode())",
        ])
        .output()
        .unwrap();
    assert!(
        hash.status.success(),
        "python3 bcrypt is installed by scripts/test.sh"
    );
    std::fs::write(
        &htpasswd,
        format!("puller:{}", String::from_utf8(hash.stdout).unwrap().trim()),
    )
    .unwrap();
    let reg = Registry::start(&c.dir, Some(&htpasswd));
    reg.push(
        "private/hello-cmd:v1",
        &example("hello-cmd"),
        &["--user", "puller", "--password", "wasm-pass"],
    );
    let image = format!("{}/private/hello-cmd:v1", reg.addr);

    run(&c, "anonymous", &image, &[]);
    c.wait_for(
        &["describe", "pod", "anonymous"],
        "unauthorized pull",
        |o| o.contains("ErrImagePull") || o.contains("ImagePullBackOff"),
    );

    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let docker_config = format!(
        r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
        reg.addr,
        b64("puller:wasm-pass")
    );
    let manifest = c.dir.join("private.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: regcred}}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: private}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - {{name: main, image: \"{image}\"}}\n",
            b64(&docker_config)
        ),
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let logs = c.wait_for(&["logs", "private"], "output", |o| o.contains("#1"));
    assert!(logs.starts_with("hello from a wasm pod #1"), "{logs}");
}

fn sha256_of(bytes: &[u8]) -> Sha256Hex {
    use sha2::Digest;
    Sha256Hex(sha2::Sha256::digest(bytes).to_vec())
}

struct Sha256Hex(Vec<u8>);

impl std::fmt::LowerHex for Sha256Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
