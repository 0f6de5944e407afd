# A stand-in Rekor on 127.0.0.1 serving recorded responses. Prints its port on the first line of
# stdout.
#
#   rekor-server.py ENTRY_FILE KNOWN_HASH UUID
#       POST /api/v1/index/retrieve answers [UUID] for the known artifact hash (else []),
#       GET /api/v1/log/entries/UUID the recorded entry.
#   rekor-server.py --scenarios DATA_DIR KNOWN_HASH
#       Several logs at once, told apart by the first path segment (rekor_url = .../<scenario>);
#       each answers the index for KNOWN_HASH with its list of UUIDs. Besides our entry
#       (rekor-entry.api.json) there are foreign ones, genuine public-good entries for the same
#       artifact made by someone else (happy-path-v0.3: a Fulcio certificate, not our key) or
#       broken (set-invalid-signature_fail: bad SET), turned from bundles into REST LogEntry form.
#         ours            [ours]
#         foreign-first   [foreign, ours]
#         broken-first    [broken, foreign, ours]
#         all-foreign     [foreign, broken]
#         many-foreign    33 foreign entries, then ours (beyond the lookup limit of 32)
#         not-a-list      {"not": "a list"}
import base64, hashlib, http.server, json, sys


def bundle_to_entry(path, prefix):
    """A Sigstore bundle's tlog entry as Rekor's REST LogEntry {uuid: {...}}."""
    t = json.load(open(path))["verificationMaterial"]["tlogEntries"][0]
    body = base64.b64decode(t["canonicalizedBody"])
    leaf = hashlib.sha256(b"\0" + body).hexdigest()
    p = t["inclusionProof"]
    entry = {
        "body": t["canonicalizedBody"],
        "integratedTime": int(t["integratedTime"]),
        "logID": base64.b64decode(t["logId"]["keyId"]).hex(),
        "logIndex": int(t["logIndex"]),
        "verification": {
            "signedEntryTimestamp": t["inclusionPromise"]["signedEntryTimestamp"],
            "inclusionProof": {
                "checkpoint": p["checkpoint"]["envelope"],
                "hashes": [base64.b64decode(h).hex() for h in p["hashes"]],
                "logIndex": int(p["logIndex"]),
                "rootHash": base64.b64decode(p["rootHash"]).hex(),
                "treeSize": int(p["treeSize"]),
            },
        },
    }
    uuid = prefix + leaf
    return uuid, json.dumps({uuid: entry}).encode()


if sys.argv[1] == "--scenarios":
    data, known_hash = sys.argv[2], sys.argv[3]
    ours_raw = open(data + "/rekor-entry.api.json", "rb").read()
    ours = next(iter(json.loads(ours_raw)))
    entries = {ours: ours_raw}
    foreign = []
    for i in range(33):
        u, e = bundle_to_entry(data + "/happy-path-v0.3.bundle.sigstore.json", "%016x" % (0xf0000 + i))
        entries[u] = e
        foreign.append(u)
    broken, e = bundle_to_entry(data + "/set-invalid-signature_fail.bundle.sigstore.json", "%016x" % 0xb0)
    entries[broken] = e
    scenarios = {
        "ours": [ours],
        "foreign-first": [foreign[0], ours],
        "broken-first": [broken, foreign[1], ours],
        "all-foreign": [foreign[0], broken],
        "many-foreign": foreign + [ours],
        "not-a-list": {"not": "a list"},
    }
else:
    entry_file, known_hash, uuid = sys.argv[1], sys.argv[2], sys.argv[3]
    entries = {uuid: open(entry_file, "rb").read()}
    scenarios = {"": [uuid]}


class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def split(self):
        """(scenario, rest of the path)"""
        if "" in scenarios:
            return "", self.path
        parts = self.path.split("/", 2)
        return (parts[1], "/" + parts[2]) if len(parts) == 3 else (None, self.path)

    def do_POST(self):
        scenario, path = self.split()
        if scenario not in scenarios or path != "/api/v1/index/retrieve":
            return self.reply(404, b"{}")
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.reply(200, json.dumps(scenarios[scenario] if req.get("hash") == "sha256:" + known_hash else []).encode())

    def do_GET(self):
        scenario, path = self.split()
        prefix = "/api/v1/log/entries/"
        if scenario in scenarios and path.startswith(prefix) and path[len(prefix):] in entries:
            return self.reply(200, entries[path[len(prefix):]])
        self.reply(404, b'{"message":"not found"}')


srv = http.server.HTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
