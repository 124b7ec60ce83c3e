#!/usr/bin/env python3
"""A small local stand-in for the Kubeflow Model Registry REST API (v1alpha3).

Used by scripts/bench-mr-register.sh (and usable by ./run-local.sh for a real, non-dry register).
It speaks the calls mr-register and the Python register_model flow make: find/create registered
models and model versions, get either by id (mr-register re-reads what a lookup by name found),
list/create model artifacts, patch artifacts. Ids are numeric strings, duplicates answer 409, finds of none answer 404, errors are {code,message}. (The strict fake with
the LIKE quirk, 422s and unknown-field checks lives in tests/MrRegister.Tests.)
Usage: fake-model-registry.py PORT   (binds 127.0.0.1:PORT; callers wait until it answers over HTTP)
"""
import json, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/api/model_registry/v1alpha3/"
lock = threading.Lock()
models, versions, artifacts = [], [], []
ids = {"ctx": 0, "art": 0}


def stamp(o, kind):
    ids[kind] += 1
    now = str(int(time.time() * 1000))
    o.update(id=str(ids[kind]), createTimeSinceEpoch=now, lastUpdateTimeSinceEpoch=now)
    o.setdefault("customProperties", {})
    return o


def public(o):
    return {k: v for k, v in o.items() if not k.startswith("_")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall on kept-alive connections

    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, message):
        self.reply(status, {"code": {400: "Bad Request", 404: "Not Found", 409: "Conflict"}.get(status, "Error"), "message": message})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        if not url.path.startswith(PREFIX):
            return self.error(404, "not found")
        seg = url.path[len(PREFIX):].split("/")
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        with lock:
            if method == "GET" and seg == ["registered_model"]:
                hits = [m for m in models if m["name"] == q.get("name")]
                return self.reply(200, public(hits[0])) if len(hits) == 1 else self.error(404, "no registered model found")
            if method == "GET" and len(seg) == 2 and seg[0] in ("registered_models", "model_versions"):
                hits = [o for o in (models if seg[0] == "registered_models" else versions) if o["id"] == seg[1]]
                return self.reply(200, public(hits[0])) if hits else self.error(404, seg[0][:-1].replace("_", " ") + " not found")
            if method == "POST" and seg == ["registered_models"]:
                b = self.body()
                if any(m["name"] == b.get("name") for m in models):
                    return self.error(409, "duplicate registered model name")
                m = stamp(dict(b, state="LIVE"), "ctx"); models.append(m)
                return self.reply(201, public(m))
            if method == "GET" and seg == ["model_version"]:
                hits = [v for v in versions if v["name"] == q.get("name") and v["registeredModelId"] == q.get("parentResourceId")]
                return self.reply(200, public(hits[0])) if len(hits) == 1 else self.error(404, "no model version found")
            if method == "POST" and seg == ["model_versions"]:
                b = self.body()
                if any(v["name"] == b.get("name") and v["registeredModelId"] == b.get("registeredModelId") for v in versions):
                    return self.error(409, "duplicate model version name")
                v = stamp(dict(b, state="LIVE"), "ctx"); versions.append(v)
                return self.reply(201, public(v))
            if len(seg) == 3 and seg[0] == "model_versions" and seg[2] == "artifacts":
                if not any(v["id"] == seg[1] for v in versions):
                    return self.error(404, "model version not found")
                if method == "GET":
                    items = [public(a) for a in artifacts if a["_parent"] == seg[1]]
                    return self.reply(200, {"items": items, "nextPageToken": "", "pageSize": len(items), "size": len(items)})
                if method == "POST":
                    b = self.body()
                    if any(a["_parent"] == seg[1] and a.get("name") == b.get("name") for a in artifacts):
                        return self.error(409, "duplicate artifact name")
                    a = stamp(dict(b, _parent=seg[1]), "art"); artifacts.append(a)
                    return self.reply(201, public(a))
            if method == "PATCH" and len(seg) == 2 and seg[0] == "model_artifacts":
                for a in artifacts:
                    if a["id"] == seg[1]:
                        a.update(self.body())
                        return self.reply(200, public(a))
                return self.error(404, "model artifact not found")
        return self.error(404, "unsupported path " + url.path)

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PATCH(self):
        self.route("PATCH")


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.serve_forever()
