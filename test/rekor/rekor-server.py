# A stand-in Rekor on 127.0.0.1 serving recorded responses: POST /api/v1/index/retrieve answers
# the UUID list for the known artifact hash (else []), GET /api/v1/log/entries/<uuid> the recorded
# entry. Prints its port on the first line of stdout.
import http.server, json, sys

entry_file, known_hash, uuid = sys.argv[1], sys.argv[2], sys.argv[3]
entry = open(entry_file, "rb").read()

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path != "/api/v1/index/retrieve":
            return self.reply(404, b"{}")
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.reply(200, json.dumps([uuid] if req.get("hash") == "sha256:" + known_hash else []).encode())

    def do_GET(self):
        if self.path == "/api/v1/log/entries/" + uuid:
            return self.reply(200, entry)
        self.reply(404, b'{"message":"not found"}')

srv = http.server.HTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
