#!/usr/bin/env python3
"""An admission webhook as a cluster's user writes one: it serves TLS and
answers `admission.k8s.io/v1` AdmissionReviews.

Usage: webhook.py ADDR PORT CERT KEY LOG

- POST /validate denies objects whose name contains "evil" (403), and
  allows the rest.
- POST /mutate allows, adding the label `mutated-by: webhook`.
- POST /slow answers after five seconds.

Every review is written to LOG as a JSON line: path, operation, resource,
name, namespace, user and dryRun.
"""
import base64
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

addr, port, cert, key, log_file = sys.argv[1:6]
log_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        review = json.loads(self.rfile.read(length))
        req = review["request"]
        obj = req.get("object") or {}
        meta = obj.get("metadata", {})
        path = self.path.split("?")[0]
        with log_lock, open(log_file, "a") as f:
            f.write(json.dumps({"path": path, "query": self.path.partition("?")[2],
                                "operation": req["operation"],
                                "resource": req["resource"]["resource"], "name": meta.get("name"),
                                "namespace": req.get("namespace"),
                                "user": req["userInfo"]["username"], "dryRun": req.get("dryRun")}) + "\n")
        response = {"uid": req["uid"], "allowed": True}
        if path == "/validate" and "evil" in (meta.get("name") or ""):
            response = {"uid": req["uid"], "allowed": False,
                        "status": {"code": 403, "message": "pods named evil are not allowed here"}}
        elif path == "/mutate":
            if meta.get("labels"):
                patch = [{"op": "add", "path": "/metadata/labels/mutated-by", "value": "webhook"}]
            else:
                patch = [{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "webhook"}}]
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        elif path == "/slow":
            time.sleep(5)
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "response": response}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((addr, int(port)), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("serving", flush=True)
server.serve_forever()
