"""Opens N watches of ConfigMaps as the cluster admin and never reads them,
until stdin closes. Usage: stalled_watches.py PORT PKI_DIR N"""
import socket
import ssl
import sys

port, pki, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=f"{pki}/ca.crt")
ctx.check_hostname = False
ctx.load_cert_chain(f"{pki}/admin.crt", f"{pki}/admin.key")
socks = []
for _ in range(n):
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s = ctx.wrap_socket(raw)
    s.sendall(b"GET /api/v1/namespaces/default/configmaps?watch=1 HTTP/1.1\r\n"
              b"Host: shoal\r\n\r\n")
    socks.append(s)
print("watching", flush=True)
sys.stdin.read()
