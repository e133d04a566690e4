#!/usr/bin/env python3
"""A test fixture, not product code: a tiny in-memory stand-in for the
Confluent Schema Registry's REST calls that recstream uses.

  POST /subjects/{subject}/versions   register -> {"id": N} (equal schema: same id)
  POST /subjects/{subject}            look up   -> {"subject","version","id","schema"}
  GET  /schemas/ids/{id}              -> {"schema": "..."}
  GET  /subjects, /subjects/{subject}/versions, /subjects/{subject}/versions/latest

Fixture controls (not registry calls):
  POST /_fixture/fail {"status": 503, "count": 2}   the next 2 requests answer 503
  GET  /_fixture/log                                every request so far, "METHOD PATH"

Binds 127.0.0.1 on a free port and writes it to --port-file. With
--user-info user:pass every registry call needs that basic auth (401 otherwise).
Standard library only.
"""
import argparse
import base64
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

CT = "application/vnd.schemaregistry.v1+json"


class Registry:
    def __init__(self, first_id):
        self.lock = threading.Lock()
        self.next_id = first_id
        self.by_id = {}      # id -> schema text
        self.canon = {}      # canonical text -> id
        self.subjects = {}   # subject -> [id, ...] (version = index + 1)
        self.fail = []       # statuses to answer with, in order
        self.log = []

    @staticmethod
    def canonical(text):
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))

    def register(self, subject, text):
        key = self.canonical(text)
        with self.lock:
            sid = self.canon.get(key)
            if sid is None:
                sid = self.next_id
                self.next_id += 1
                self.canon[key] = sid
                self.by_id[sid] = text
            versions = self.subjects.setdefault(subject, [])
            if sid not in versions:
                versions.append(sid)
            return sid

    def lookup(self, subject, text):
        key = self.canonical(text)
        with self.lock:
            sid = self.canon.get(key)
            versions = self.subjects.get(subject)
            if versions is None:
                return None, 40401
            if sid not in versions:
                return None, 40403
            return {"subject": subject, "version": versions.index(sid) + 1, "id": sid,
                    "schema": self.by_id[sid]}, 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as curl reuses its connection

    def log_message(self, fmt, *args):
        sys.stderr.write("registry-fixture: " + (fmt % args) + "\n")

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", CT)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.reply(status, {"error_code": code, "message": message})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def authorized(self):
        need = self.server.user_info
        if not need:
            return True
        want = "Basic " + base64.b64encode(need.encode()).decode()
        return self.headers.get("Authorization") == want

    def gate(self, method):
        """Logs the request; answers the fixture's injected failures and auth."""
        reg = self.server.registry
        with reg.lock:
            reg.log.append(method + " " + self.path)
            status = reg.fail.pop(0) if reg.fail else None
        if status:
            self.error(status, status * 100, "injected failure")
            return False
        if not self.authorized():
            self.error(401, 401, "Unauthorized")
            return False
        return True

    def do_GET(self):
        reg = self.server.registry
        if self.path == "/_fixture/log":
            with reg.lock:
                return self.reply(200, list(reg.log))
        if not self.gate("GET"):
            return
        parts = [unquote(p) for p in self.path.strip("/").split("/")]
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
            text = reg.by_id.get(int(parts[2]))
            if text is None:
                return self.error(404, 40403, "Schema %s not found" % parts[2])
            return self.reply(200, {"schema": text})
        if parts == ["subjects"]:
            return self.reply(200, sorted(reg.subjects))
        if len(parts) >= 3 and parts[0] == "subjects" and parts[2] == "versions":
            versions = reg.subjects.get(parts[1])
            if versions is None:
                return self.error(404, 40401, "Subject '%s' not found." % parts[1])
            if len(parts) == 3:
                return self.reply(200, list(range(1, len(versions) + 1)))
            if parts[3] == "latest":
                sid = versions[-1]
                return self.reply(200, {"subject": parts[1], "version": len(versions),
                                        "id": sid, "schema": reg.by_id[sid]})
        self.error(404, 404, "not found")

    def do_POST(self):
        reg = self.server.registry
        data = self.body()
        if self.path == "/_fixture/fail":
            req = json.loads(data or b"{}")
            with reg.lock:
                reg.fail = [int(req.get("status", 503))] * int(req.get("count", 1))
            return self.reply(200, {})
        if not self.gate("POST"):
            return
        parts = [unquote(p) for p in self.path.strip("/").split("/")]
        try:
            schema = json.loads(data)["schema"]
            self.server.registry.canonical(schema)
        except (ValueError, KeyError, TypeError):
            return self.error(422, 42201, "Invalid schema")
        if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
            return self.reply(200, {"id": reg.register(parts[1], schema)})
        if len(parts) == 2 and parts[0] == "subjects":
            found, code = reg.lookup(parts[1], schema)
            if not found:
                what = "Subject '%s' not found." if code == 40401 else "Schema not found"
                return self.error(404, code, what % parts[1] if "%s" in what else what)
            return self.reply(200, found)
        self.error(404, 404, "not found")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--first-id", type=int, default=1)
    ap.add_argument("--user-info", default="")
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.registry = Registry(args.first_id)
    srv.user_info = args.user_info
    srv.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(args.port_file + ".tmp", args.port_file)  # readers never see half a port
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
