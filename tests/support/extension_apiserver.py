#!/usr/bin/env python3
"""An extension API server for `metrics.k8s.io/v1beta1`, as a third party
writes one: it serves TLS, trusts the identity headers only from a client
certificate of the front-proxy CA with an allowed name (what the cluster's
`kube-system/extension-apiserver-authentication` ConfigMap says), and
answers discovery and node metrics.

Usage: extension_apiserver.py ADDR PORT CERT KEY CONFIGMAP_JSON NODE LOG

Every request is written to LOG as a JSON line: method, path, the user and
groups it was trusted to come from (null when the caller was not the front
proxy), and every header it carried.
"""
import json
import ssl
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

addr, port, cert, key, cm_file, node, log_file = sys.argv[1:8]
with open(cm_file) as f:
    auth = json.load(f)["data"]
allowed = set(json.loads(auth["requestheader-allowed-names"]))
user_headers = json.loads(auth["requestheader-username-headers"])
group_headers = json.loads(auth["requestheader-group-headers"])
log_lock = threading.Lock()

RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "metrics.k8s.io/v1beta1",
    "resources": [
        {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
        {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
    ],
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def identity(self):
        peer = self.connection.getpeercert() or {}
        names = {v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"}
        if not names & allowed:
            return None, []
        user = next((self.headers[h] for h in user_headers if self.headers.get(h)), None)
        groups = [g for h in group_headers for g in self.headers.get_all(h) or []]
        return user, groups

    def do_GET(self):
        user, groups = self.identity()
        with log_lock, open(log_file, "a") as f:
            f.write(json.dumps({"method": "GET", "path": self.path, "user": user, "groups": groups,
                                "headers": {k.lower(): v for k, v in self.headers.items()}}) + "\n")
        if user is None:
            return self.reply(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "reason": "Unauthorized", "code": 401, "message": "Unauthorized"})
        path = self.path.split("?")[0].rstrip("/")
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if path == "/apis/metrics.k8s.io/v1beta1":
            return self.reply(200, RESOURCES)
        if path == "/apis/metrics.k8s.io/v1beta1/nodes":
            return self.reply(200, {"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1",
                                    "metadata": {}, "items": [{
                                        "metadata": {"name": node, "creationTimestamp": now},
                                        "timestamp": now, "window": "10s",
                                        "usage": {"cpu": "250m", "memory": "65536Ki"}}]})
        self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "NotFound", "code": 404, "message": f"{path} not found"})

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.verify_mode = ssl.CERT_OPTIONAL
ctx.load_verify_locations(cadata=auth["requestheader-client-ca-file"])
server = ThreadingHTTPServer((addr, int(port)), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("serving", flush=True)
server.serve_forever()
