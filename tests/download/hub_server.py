"""A stand-in for the Hugging Face Hub and GitHub's raw files, on 127.0.0.1, for `models download` tests.

It speaks the Hub protocol that huggingface_hub and `virnucpro models download` use:
  HEAD/GET /{org}/{name}/resolve/{revision}/{file}
    small files: 200, ETag = git blob id, Content-Length, X-Repo-Commit
    large (LFS) files: 302 to http://localhost:PORT/lfs/{sha256} (another origin) with X-Linked-Etag = sha256, X-Linked-Size, X-Repo-Commit
  GET /lfs/{sha256}: the bytes, with Range requests (206, Content-Range)
  GET /VirNucPro/{300,500}_model.pth: the classifier files (Range too)
  GET /api/models/{org}/{name}/{revision,tree}/{revision}: commit and file list (`hf download --include`)
Faults, set on the server object: a dropped connection after N bytes, a wrong hash, a missing file,
a required token, a stall. Every request is logged (method, path, headers) for the tests' asserts.
Python standard library only.
"""
import hashlib
import http.server
import json
import os
import threading
import time
import urllib.parse

LFS_SUFFIXES = (".bin", ".safetensors", ".pth", ".h5")


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, name, files):
        self.name = name
        self.files = files  # file name -> bytes
        self.commit = hashlib.sha1(name.encode()).hexdigest()


class HubServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, data_dir):
        super().__init__(("127.0.0.1", 0), Handler)
        def read(*parts):
            with open(os.path.join(data_dir, *parts), "rb") as f:
                return f.read()

        esm = {f: read("esm2_tiny", f) for f in ("config.json", "vocab.txt", "model.safetensors", "pytorch_model.bin")}
        dnabert = {f: read("dnabert2_tiny", f) for f in ("config.json", "tokenizer.json", "pytorch_model.bin")}
        self.repos = {r.name: r for r in (Repo("facebook/esm2_t36_3B_UR50D", esm), Repo("zhihan1996/DNABERT-S", dnabert))}
        classifier = read("mlp", "mlp_tiny_160x32.pth")
        self.raw = {"300_model.pth": classifier, "500_model.pth": classifier}
        self.lfs = {}  # sha256 -> bytes
        for repo in self.repos.values():
            for name, data in repo.files.items():
                if name.endswith(LFS_SUFFIXES):
                    self.lfs[hashlib.sha256(data).hexdigest()] = data
        self.reset()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def reset(self):
        self.log = []
        self.drop_after = {}  # file name -> bytes sent before the connection is cut (once)
        self.wrong_hash = set()  # file names whose advertised hash is wrong
        self.missing = set()  # file names answered with 404
        self.token = None  # when set, resolve requests need "Authorization: Bearer <token>"
        self.stall = set()  # file names whose GET sends nothing, for a long time

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def requests(self, method=None, contains=""):
        return [r for r in self.log if (method is None or r["method"] == method) and contains in r["path"]]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.route(head=True)

    def do_GET(self):
        self.route(head=False)

    def route(self, head):
        srv = self.server
        path = urllib.parse.urlparse(self.path).path
        srv.log.append({"method": self.command, "path": path, "headers": dict(self.headers.items())})
        parts = path.strip("/").split("/")
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] in ("revision", "tree") and not head:
            return self.repo_info("/".join(parts[2:4]), urllib.parse.unquote(parts[5]), parts[4] == "tree")
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve("/".join(parts[:2]), urllib.parse.unquote(parts[3]), "/".join(parts[4:]), head)
        if len(parts) == 2 and parts[0] == "lfs" and parts[1] in srv.lfs:
            name = next(n for r in srv.repos.values() for n, d in r.files.items()
                        if hashlib.sha256(d).hexdigest() == parts[1])
            return self.send_bytes(srv.lfs[parts[1]], head, name)
        if len(parts) == 2 and parts[0] == "VirNucPro" and parts[1] in srv.raw and parts[1] not in srv.missing:
            return self.send_bytes(srv.raw[parts[1]], head, parts[1])
        self.send_error_code(404, "EntryNotFound")

    def repo_info(self, repo_name, revision, tree):
        """The commit and file list `hf download --include` (snapshot_download) asks for first."""
        repo = self.server.repos.get(repo_name)
        if repo is None or revision not in ("main", repo.commit):
            return self.send_error_code(404, "RepoNotFound")
        if tree:
            info = [{"type": "file", "path": f, "size": len(d), "oid": git_blob_id(d)}
                    for f, d in sorted(repo.files.items())]
        else:
            info = {"id": repo_name, "modelId": repo_name, "sha": repo.commit,
                    "siblings": [{"rfilename": f} for f in sorted(repo.files)]}
        body = json.dumps(info).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def resolve(self, repo_name, revision, file, head):
        srv = self.server
        if srv.token is not None and self.headers.get("Authorization") != "Bearer " + srv.token:
            return self.send_error_code(401, "RepoNotFound")
        repo = srv.repos.get(repo_name)
        if repo is None:
            return self.send_error_code(401, "RepoNotFound")
        if revision not in ("main", repo.commit):
            return self.send_error_code(404, "RevisionNotFound")
        if file not in repo.files or file in srv.missing:
            return self.send_error_code(404, "EntryNotFound", {"X-Repo-Commit": repo.commit})
        data = repo.files[file]
        if file.endswith(LFS_SUFFIXES):
            sha = hashlib.sha256(data).hexdigest()
            advertised = hashlib.sha256(b"something else").hexdigest() if file in srv.wrong_hash else sha
            self.send_response(302)
            # Large files live elsewhere (another origin, as the Hub's CDN), which must not see the token.
            self.send_header("Location", "http://localhost:%d/lfs/%s" % (srv.server_address[1], sha))
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("X-Linked-Etag", '"%s"' % advertised)
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", '"%s"' % git_blob_id(b"pointer " + data[:16]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        blob = git_blob_id(data) if file not in srv.wrong_hash else git_blob_id(b"other")
        self.send_bytes(data, head, file, {"X-Repo-Commit": repo.commit, "ETag": '"%s"' % blob})

    def send_bytes(self, data, head, name, extra=None):
        srv = self.server
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-") and not head:
            start = int(rng[6:-1])
        if start >= len(data) and start > 0:
            self.send_response(416)
            self.send_header("Content-Range", "bytes */%d" % len(data))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if head:
            return
        if name in srv.stall:
            time.sleep(60)
            return
        body = data[start:]
        cut = srv.drop_after.pop(name, None)
        if cut is not None and cut - start < len(body):
            self.wfile.write(body[: cut - start])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def send_error_code(self, status, code, extra=None):
        body = ("%s: %s" % (code, self.path)).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


if __name__ == "__main__":
    # python3 hub_server.py DATA_DIR URL_FILE: serves until killed; the URL is written to URL_FILE.
    import sys

    server = HubServer(sys.argv[1])
    with open(sys.argv[2], "w") as f:
        f.write(server.url)
    server.thread.join()
