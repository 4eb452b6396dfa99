#!/usr/bin/env python3
"""A stand-in for the Hugging Face hub on 127.0.0.1, for tests/pull_test.sh.

It serves model folders from disk through the two endpoints huggingface_hub uses:
  GET /api/models/ORG/NAME/revision/REV?blobs=true   the commit ("sha") and the files ("siblings",
                                                     with "size", "blobId" and, for LFS files, "lfs")
  GET /ORG/NAME/resolve/REV/FILE                      the file; an LFS file by a redirect to /cdn/SHA256
with Range requests, X-Repo-Commit / ETag / X-Linked-Etag headers and the hub's error headers
(X-Error-Code). Switches inject the failures a download must survive or report.
"""
import argparse
import hashlib
import http.server
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".h5", ".msgpack", ".onnx")


class Repo:
    def __init__(self, name, folder):
        self.name, self.files = name, {}
        for root, _, names in os.walk(folder):
            for n in sorted(names):
                path = os.path.join(root, n)
                rel = os.path.relpath(path, folder)
                data = open(path, "rb").read()
                self.files[rel] = {
                    "path": path, "size": len(data),
                    "blob_id": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
                    "sha256": hashlib.sha256(data).hexdigest() if rel.endswith(LFS_SUFFIXES) else None,
                }
        ids = "".join(self.files[f]["blob_id"] for f in sorted(self.files))
        self.commit = hashlib.sha1((name + ids).encode()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", action="append", default=[], help="ORG/NAME=FOLDER")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True, help="one line per request: METHOD PATH RANGE")
    ap.add_argument("--token", help="a private repository: the file list and the files need 'Authorization: Bearer TOKEN'")
    ap.add_argument("--gated", help="a gated repository: the file list is public, the files need 'Authorization: Bearer TOKEN'")
    ap.add_argument("--no-redirect", action="store_true", help="serve LFS files from resolve directly")
    ap.add_argument("--no-range", action="store_true", help="ignore Range headers (answer 200)")
    ap.add_argument("--drop-once", help="FILE: the first download of it breaks off halfway")
    ap.add_argument("--drop-every", help="FILE: every download of it breaks off halfway through what is left")
    ap.add_argument("--stall-once", help="FILE: the first download of it stops halfway and hangs")
    ap.add_argument("--bad-sha", help="FILE: the file list gives it a wrong SHA-256")
    a = ap.parse_args()
    repos = {}
    for spec in a.repo:
        name, folder = spec.split("=", 1)
        repos[name] = Repo(name, folder)
    by_sha = {f["sha256"]: f for r in repos.values() for f in r.files.values() if f["sha256"]}
    lock = threading.Lock()
    once_used = set()
    log = open(a.log, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def reply(self, code, body=b"", headers=None):
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def error(self, code, error_code, message):
            body = json.dumps({"error": message}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Message": message}
            if error_code:
                headers["X-Error-Code"] = error_code
            self.reply(code, body, headers)

        def authorized(self, repo, file):
            """What the hub answers for a private repository (401 as if it did not exist) and a
            gated one (401 without a token, 403 with a token that was not granted access)."""
            auth = self.headers.get("Authorization")
            if a.token and auth != "Bearer " + a.token:
                if auth is None:
                    self.error(401, "RepoNotFound", "Repository not found")
                else:
                    self.error(401, None, "Invalid credentials in Authorization header")
                return False
            if a.gated and file and auth != "Bearer " + a.gated:
                if auth is None:
                    self.error(401, "GatedRepo", f"Access to model {repo} is restricted. You must be authenticated to access it.")
                else:
                    self.error(403, "GatedRepo", f"Access to model {repo} is restricted and you are not in the authorized list.")
                return False
            return True

        def send_file(self, f, headers):
            """The file's bytes, honouring Range, with the injected failures."""
            size, start = f["size"], 0
            rng = self.headers.get("Range")
            if rng and not a.no_range:
                start = int(rng.split("=")[1].split("-")[0])
                if start >= size:
                    self.reply(416, b"", {"Content-Range": f"bytes */{size}"})
                    return
            data = open(f["path"], "rb").read()[start:]
            name = os.path.basename(f["path"])
            self.send_response(206 if start else 200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Accept-Ranges", "bytes")
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with lock:
                first = name not in once_used
                once_used.add(name)
            cut = None
            if name == a.drop_every or (name == a.drop_once and first):
                cut = len(data) // 2
            if name == a.stall_once and first:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                time.sleep(60)
                return
            if cut is not None:
                self.wfile.write(data[:cut])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(data)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            log.write(f"{self.command} {url.path} {self.headers.get('Range') or '-'}\n")
            parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
            if parts[:1] == ["cdn"] and len(parts) == 2 and parts[1] in by_sha:
                return self.send_file(by_sha[parts[1]], {"ETag": '"%s"' % parts[1]})
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                name = "/".join(parts[2:4])
                if name not in repos:
                    return self.error(404, "RepoNotFound", "Repository not found")
                if not self.authorized(name, False):
                    return
                repo = repos[name]
                rev = parts[5] if len(parts) == 6 and parts[4] == "revision" else "main"
                if rev not in ("main", "v1", repo.commit):
                    return self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                blobs = "blobs" in urllib.parse.parse_qs(url.query)
                siblings = []
                for rel, f in sorted(repo.files.items()):
                    s = {"rfilename": rel}
                    if blobs:
                        s.update(size=f["size"], blobId=f["blob_id"])
                        if f["sha256"]:
                            sha = hashlib.sha256(b"wrong").hexdigest() if rel == a.bad_sha else f["sha256"]
                            s["lfs"] = {"sha256": sha, "size": f["size"], "pointerSize": 134}
                    siblings.append(s)
                body = json.dumps({"id": name, "modelId": name, "sha": repo.commit, "siblings": siblings}).encode()
                return self.reply(200, body, {"Content-Type": "application/json"})
            if len(parts) >= 5 and parts[2] == "resolve":
                name = "/".join(parts[:2])
                if name not in repos:
                    return self.error(404, "RepoNotFound", "Repository not found")
                if not self.authorized(name, True):
                    return
                repo, rev, rel = repos[name], parts[3], "/".join(parts[4:])
                if rev not in ("main", "v1", repo.commit):
                    return self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                f = repo.files.get(rel)
                if f is None:
                    return self.error(404, "EntryNotFound", f"{rel} does not exist on {rev}")
                headers = {"X-Repo-Commit": repo.commit}
                if f["sha256"]:
                    headers.update({"X-Linked-Etag": '"%s"' % f["sha256"], "X-Linked-Size": str(f["size"])})
                    if not a.no_redirect:
                        headers["Location"] = "/cdn/" + f["sha256"]
                        return self.reply(302, b"", headers)
                else:
                    headers["ETag"] = '"%s"' % f["blob_id"]
                return self.send_file(f, headers)
            self.error(404, None, "Not found")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, a.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
