#!/usr/bin/env python3
"""A local stand-in for the Hugging Face Hub that serves one folder as a model repository.

Used by ./run-local.sh (the pipeline's download step without network). It speaks the parts of the
Hub protocol hf-fetch uses: /api/models/{repo}/revision/{rev}, /api/models/{repo}/tree/{rev}
(recursive), and /{repo}/resolve/{rev}/{path} (HEAD and GET, Range, X-Repo-Commit,
X-Linked-Etag/Size; files >= 1 MiB are "LFS" files whose etag is their sha256).
Usage: fake-hub.py DIR REPO_ID PORT   (binds 127.0.0.1:PORT; callers wait until it answers over HTTP)
"""
import hashlib, json, os, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

root, repo_id, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
LFS_MIN = 1 << 20
files = {}
for dirpath, _, names in os.walk(root):
    for n in names:
        full = os.path.join(dirpath, n)
        rel = os.path.relpath(full, root).replace(os.sep, "/")
        if rel.startswith("."):
            continue
        data_sha1, data_sha256, size = hashlib.sha1(), hashlib.sha256(), os.path.getsize(full)
        data_sha1.update(b"blob %d\0" % size)
        with open(full, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                data_sha1.update(chunk)
                data_sha256.update(chunk)
        files[rel] = {"full": full, "size": size, "oid": data_sha1.hexdigest(), "sha256": data_sha256.hexdigest()}
commit = hashlib.sha1("".join(f"{p}:{files[p]['oid']}" for p in sorted(files)).encode()).hexdigest()


def tree_entry(path):
    f = files[path]
    e = {"type": "file", "path": path, "oid": f["oid"], "size": f["size"]}
    if f["size"] >= LFS_MIN:
        e["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": 134}
    return e


class Hub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status >= 400:
            self.send_header("X-Error-Code", obj.get("code", "EntryNotFound"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        api = f"/api/models/{repo_id}/"
        if path.startswith(api + "revision/"):
            return self.send_json({"id": repo_id, "sha": commit, "siblings": [{"rfilename": p} for p in sorted(files)]})
        if path.startswith(api + "tree/"):
            return self.send_json([tree_entry(p) for p in sorted(files)])
        prefix = f"/{repo_id}/resolve/"
        if not path.startswith(prefix):
            return self.send_json({"error": "Repository not found", "code": "RepoNotFound"}, 404)
        rel = path[len(prefix):].split("/", 1)[1] if "/" in path[len(prefix):] else ""
        f = files.get(rel)
        if f is None:
            return self.send_json({"error": "Entry not found", "code": "EntryNotFound"}, 404)
        etag = f["sha256"] if f["size"] >= LFS_MIN else f["oid"]
        start, end = 0, f["size"] - 1
        rng = self.headers.get("Range")
        status = 200
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a) if a else 0
            end = min(int(b), end) if b else end
            if start >= f["size"] and f["size"] > 0:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{f['size']}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        length = max(0, end - start + 1)
        self.send_response(status)
        self.send_header("X-Repo-Commit", commit)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Linked-Etag", f'"{etag}"')
        self.send_header("X-Linked-Size", str(f["size"]))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{f['size']}")
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(f["full"], "rb") as fh:
            fh.seek(start)
            left = length
            while left:
                chunk = fh.read(min(left, 1 << 20))
                self.wfile.write(chunk)
                left -= len(chunk)


server = ThreadingHTTPServer(("127.0.0.1", port), Hub)
server.serve_forever()
