"""The Python client's port-forward (WebSocket channels): an HTTP request to
the `web` pod's component and a port nothing serves. Argument: a
kubeconfig."""
import sys

from kubernetes import client, config
from kubernetes.stream import portforward

config.load_kube_config(sys.argv[1])
v1 = client.CoreV1Api()

pf = portforward(v1.connect_get_namespaced_pod_portforward, "web", "default",
                 ports="8080")
sock = pf.socket(8080)
sock.setblocking(True)
sock.sendall(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
reply = b""
while True:
    chunk = sock.recv(4096)
    if not chunk:
        break
    reply += chunk
sock.close()
assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
assert b"forwarded hello" in reply, reply
assert pf.error(8080) is None, pf.error(8080)

pf = portforward(v1.connect_get_namespaced_pod_portforward, "web", "default",
                 ports="9999")
sock = pf.socket(9999)
sock.setblocking(True)
sock.recv(1)
error = pf.error(9999)
assert error and "error forwarding port 9999" in error, error
print("python port-forward: ok")
