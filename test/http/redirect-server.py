# Loopback servers for test-http: one HTTPS (certificate and key from argv, issued by the test's CA)
# and one plain HTTP, both threaded. Prints "<https port> <http port>" on the first line.
# Paths (same on both):
#   /final             200 "final <scheme>"
#   /to-https          302 to https://localhost:<https port>/final
#   /to-http           302 to http://127.0.0.1:<http port>/final
#   /loop              302 to /loop (relative)
#   /missing           404
import http.server, socketserver, ssl, sys, threading

cert, key = sys.argv[1], sys.argv[2]
ports = {}

class H(http.server.BaseHTTPRequestHandler):
    scheme = "http"

    def log_message(self, *a):
        pass

    def reply(self, code, body=b"", location=None):
        self.send_response(code)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        p = self.path
        if p == "/final":
            return self.reply(200, ("final " + self.scheme).encode())
        if p == "/to-https":
            return self.reply(302, location="https://localhost:%d/final" % ports["https"])
        if p == "/to-http":
            return self.reply(302, location="http://127.0.0.1:%d/final" % ports["http"])
        if p == "/loop":
            return self.reply(302, location="/loop")
        self.reply(404, b"not found")

class HS(H):
    scheme = "https"

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

plain = Server(("127.0.0.1", 0), H)
tls = Server(("127.0.0.1", 0), HS)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
ports["http"], ports["https"] = plain.server_address[1], tls.server_address[1]
print(ports["https"], ports["http"], flush=True)
threading.Thread(target=plain.serve_forever, daemon=True).start()
tls.serve_forever()
