"""Pushes a Wasm binary to an OCI registry with oras (the Python client), as
a CNCF Wasm artifact (default) or as a runwasi-style image (--runwasi).

usage: oras_push.py HOST:PORT REPO:TAG FILE.wasm [--runwasi] [--user U --password P]
"""

import argparse
import json
import os
import tempfile

import oras.client


def main():
    p = argparse.ArgumentParser()
    p.add_argument("registry")
    p.add_argument("target")
    p.add_argument("wasm")
    p.add_argument("--runwasi", action="store_true")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()
    client = oras.client.OrasClient(hostname=a.registry, insecure=True, auth_backend="basic")
    if a.user:
        client.login(username=a.user, password=a.password, hostname=a.registry, tls_verify=False)
    work = tempfile.mkdtemp()
    wasm = os.path.join(work, "module.wasm")
    with open(a.wasm, "rb") as src, open(wasm, "wb") as dst:
        dst.write(src.read())
    config = os.path.join(work, "config.json")
    if a.runwasi:
        layer_type = "application/vnd.w3c.wasm.module.v1+wasm"
        config_type = "application/vnd.oci.image.config.v1+json"
        body = {"architecture": "wasm", "os": "wasip1", "config": {"Entrypoint": ["/module.wasm"]}, "rootfs": {"type": "layers", "diff_ids": []}}
    else:
        layer_type = "application/wasm"
        config_type = "application/vnd.wasm.config.v0+json"
        body = {"architecture": "wasm", "os": "wasip2"}
    with open(config, "w") as f:
        json.dump(body, f)
    os.chdir(work)
    client.push(
        target=f"{a.registry}/{a.target}",
        files=[f"module.wasm:{layer_type}"],
        manifest_config=f"config.json:{config_type}",
        disable_path_validation=True,
    )


if __name__ == "__main__":
    main()
