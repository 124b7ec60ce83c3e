#!/usr/bin/env python3
"""Minimal local Hugging Face Hub for scripts/bench-hf-fetch.sh: just enough API for hf-fetch
(revision, recursive tree, resolve → 302 to a /cdn/ path) and byte serving with Range via sendfile.
Usage: bench-hf-fetch-server.py DATA_DIR PORT [BYTES_PER_SECOND]  (DATA_DIR holds meta.json and the files;
binds 127.0.0.1:PORT). With BYTES_PER_SECOND the file bodies of ALL connections together are sent at that rate
(one shared token bucket, like a link to the Hub: parallel requests do not add up), still with sendfile, in
256 KiB slices; without it, at full speed."""
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse

root, port = sys.argv[1], int(sys.argv[2])
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
SLICE = 256 << 10


class Link:
    """The shared rate limit: each slice gets the next free time slot of the link (no burst after idling)."""

    def __init__(self, bytes_per_second):
        self.rate = bytes_per_second
        self.lock = threading.Lock()
        self.free_at = time.monotonic()

    def take(self, n):
        with self.lock:
            now = time.monotonic()
            start = max(self.free_at, now)
            self.free_at = start + n / self.rate
        if start > now:
            time.sleep(start - now)


link = Link(rate) if rate > 0 else None
with open(os.path.join(root, "meta.json")) as f:
    meta = json.load(f)
commit = meta["commit"]
files = {x["path"]: x for x in meta["files"]}
repo = meta["repo"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, value):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if path.startswith(f"/api/models/{repo}/revision/"):
            return self.send_json({"id": repo, "sha": commit})
        if path.startswith(f"/api/models/{repo}/tree/"):
            return self.send_json([
                {"type": "file", "path": x["path"], "oid": "0" * 40, "size": 134,
                 "lfs": {"oid": x["sha256"], "size": x["size"], "pointerSize": 134}}
                for x in meta["files"]])
        m = re.match(rf"^/{re.escape(repo)}/resolve/[^/]+/(.+)$", path)
        if m and m.group(1) in files:
            x = files[m.group(1)]
            self.send_response(302)
            self.send_header("Location", "/cdn/" + urllib.parse.quote(x["path"]))
            self.send_header("X-Repo-Commit", commit)
            self.send_header("X-Linked-Etag", '"%s"' % x["sha256"])
            self.send_header("X-Linked-Size", str(x["size"]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path.startswith("/cdn/") and path[5:] in files:
            return self.serve(files[path[5:]], head)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def serve(self, x, head):
        size = x["size"]
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        status = 200
        if rng:
            m = re.match(r"bytes=(\d+)-(\d*)$", rng)
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        count = end - start + 1
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"%s"' % x["sha256"])
        self.send_header("Content-Length", str(count))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        self.wfile.flush()
        with open(os.path.join(root, x["path"]), "rb") as f:
            if link is None:
                self.connection.sendfile(f, start, count)
                return
            at, end_at = start, start + count
            while at < end_at:
                n = min(SLICE, end_at - at)
                link.take(n)
                self.connection.sendfile(f, at, n)
                at += n


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


server = Server(("127.0.0.1", port), Handler)
server.serve_forever()
