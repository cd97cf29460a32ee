"""Pushes a Wasm binary to an OCI registry with oras (the Python client) in
one of the formats Wasm images are published in:

- artifact: the CNCF Wasm OCI artifact (application/wasm layer)
- wasm-layer: an OCI image whose layer is the module itself (runwasi's
  media types), entrypoint in the image config
- container: an image built like a container (`docker buildx --platform
  wasi/wasm`): gzip tar layers, the module at /app.wasm, entrypoint and
  environment in the image config, and an unrelated base layer below;
  `--path` puts the file elsewhere and `--entrypoint` (JSON) replaces the
  entrypoint, so any static binary makes an ordinary container image

usage: oras_push.py HOST:PORT REPO:TAG FILE.wasm [--format F] [--path P --entrypoint JSON]
                    [--user U --password P]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile

import oras.client


def tar_layer(path, files):
    """Writes a gzip tar layer holding `files` (name -> bytes); returns the
    digest of the uncompressed tar (the config's diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    with open(path, "wb") as f:
        f.write(gzip.compress(raw.getvalue()))
    return "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("registry")
    p.add_argument("target")
    p.add_argument("wasm")
    p.add_argument("--format", choices=["artifact", "wasm-layer", "container"], default="artifact")
    p.add_argument("--path", default="app.wasm")
    p.add_argument("--entrypoint", default='["/app.wasm"]')
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()
    client = oras.client.OrasClient(hostname=a.registry, insecure=True, auth_backend="basic")
    if a.user:
        client.login(username=a.user, password=a.password, hostname=a.registry, tls_verify=False)
    work = tempfile.mkdtemp()
    with open(a.wasm, "rb") as src:
        module = src.read()
    config = os.path.join(work, "config.json")
    if a.format == "container":
        base = tar_layer(os.path.join(work, "base.tar.gz"), {"etc/motd": b"base layer\n"})
        app = tar_layer(os.path.join(work, "app.tar.gz"), {a.path: module})
        layer_type = "application/vnd.oci.image.layer.v1.tar+gzip"
        files = [f"base.tar.gz:{layer_type}", f"app.tar.gz:{layer_type}"]
        config_type = "application/vnd.oci.image.config.v1+json"
        body = {
            "architecture": "wasm",
            "os": "wasip1",
            "config": {"Entrypoint": json.loads(a.entrypoint), "Env": ["GREETING=hello from the image config"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [base, app]},
        }
    else:
        with open(os.path.join(work, "module.wasm"), "wb") as dst:
            dst.write(module)
        if a.format == "wasm-layer":
            layer_type = "application/vnd.w3c.wasm.module.v1+wasm"
            config_type = "application/vnd.oci.image.config.v1+json"
            body = {"architecture": "wasm", "os": "wasip1", "config": {"Entrypoint": ["/module.wasm"]}, "rootfs": {"type": "layers", "diff_ids": []}}
        else:
            layer_type = "application/wasm"
            config_type = "application/vnd.wasm.config.v0+json"
            body = {"architecture": "wasm", "os": "wasip2"}
        files = [f"module.wasm:{layer_type}"]
    with open(config, "w") as f:
        json.dump(body, f)
    os.chdir(work)
    client.push(
        target=f"{a.registry}/{a.target}",
        files=files,
        manifest_config=f"config.json:{config_type}",
        disable_path_validation=True,
    )


if __name__ == "__main__":
    main()
