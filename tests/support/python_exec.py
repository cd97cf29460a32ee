"""kubectl exec's calls through the Python client (WebSocket, v4.channel.k8s.io):
output of both streams, stdin, and the exit code. Argument: a kubeconfig."""
import sys

from kubernetes import client, config
from kubernetes.stream import stream

config.load_kube_config(sys.argv[1])
v1 = client.CoreV1Api()

out = stream(v1.connect_get_namespaced_pod_exec, "box", "default",
             command=["sh", "-c", "echo out; echo err >&2"],
             stderr=True, stdin=False, stdout=True, tty=False)
assert "out" in out and "err" in out, repr(out)

resp = stream(v1.connect_get_namespaced_pod_exec, "box", "default",
              command=["wc", "-c"], stderr=True, stdin=True, stdout=True,
              tty=False, _preload_content=False)
resp.write_stdin("12345")
resp.update(timeout=2)
# The v4 protocol has no "close stdin": the shell is left to end by exit.
resp.close()

resp = stream(v1.connect_get_namespaced_pod_exec, "box", "default",
              command=["sh", "-c", "exit 5"], stderr=True, stdin=False,
              stdout=True, tty=False, _preload_content=False)
resp.run_forever(timeout=10)
assert resp.returncode == 5, resp.returncode
print("python exec: ok")
