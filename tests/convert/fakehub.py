"""A local HTTP server that plays the Hugging Face hub for HF_ENDPOINT, on 127.0.0.1 only.

Only what `hf_hub_download` (huggingface_hub 2.x) calls for one file, plus the two listing calls
of `snapshot_download` for model repos (`/api/models/OWNER/NAME/revision/REV`, `.../tree/REV`): HEAD and GET of
`/{spaces/}OWNER/NAME/resolve/REV/PATH`. HEAD answers ETag (the file's sha256, quoted, as the hub
does for LFS files), X-Repo-Commit, Content-Length and Accept-Ranges; GET honours `Range: bytes=N-`
with 206 + Content-Range (resumed downloads). Knobs for the failure tests: `short` (serve fewer
bytes than announced), `slow` (seconds per 64 KiB chunk), `replace` (serve other bytes).
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self):
        self.files: dict[str, bytes] = {}  # "spaces/OWNER/NAME/PATH" -> bytes
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.short: dict[str, int] = {}  # key -> bytes to actually send
        self.slow = 0.0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep pytest output clean
                pass

            def _key(self):
                parts = unquote(self.path.split("?")[0]).lstrip("/").split("/")
                spaces = parts[0] in ("spaces", "datasets")
                head, rest = (parts[:3], parts[3:]) if spaces else (parts[:2], parts[2:])
                if len(rest) < 3 or rest[0] != "resolve":
                    return None
                return "/".join(head + rest[2:])

            def _answer(self, body_wanted: bool):
                key = self._key()
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                data = hub.files.get(key) if key else None
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0] or 0)
                etag = hashlib.sha256(data).hexdigest()
                self.send_response(206 if start else 200)
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not body_wanted:
                    return
                end = hub.short.get(key, len(data))
                pos = start
                try:
                    while pos < end:
                        chunk = data[pos:min(end, pos + 65536)]
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        pos += len(chunk)
                        if hub.slow:
                            time.sleep(hub.slow)
                except (BrokenPipeError, ConnectionResetError):
                    return
                if end < len(data):
                    self.close_connection = True

            def do_HEAD(self):
                self._answer(False)

            def _api(self) -> bool:
                """GET /api/models/OWNER/NAME/revision/REV and .../tree/REV (snapshot_download's listing)."""
                import json

                path = unquote(self.path.split("?")[0])
                if not path.startswith("/api/models/"):
                    return False
                parts = path[len("/api/models/"):].split("/")
                repo, kind = "/".join(parts[:2]), parts[2] if len(parts) > 2 else ""
                hub.requests.append(("GET", self.path, None))
                files = {k[len(repo) + 1:]: v for k, v in hub.files.items() if k.startswith(repo + "/")}
                if not files or kind not in ("revision", "tree"):
                    body, code = b'{"error": "Repository not found"}', 404
                elif kind == "revision":
                    body, code = json.dumps({"id": repo, "sha": COMMIT,
                                             "siblings": [{"rfilename": f} for f in sorted(files)]}).encode(), 200
                else:
                    body, code = json.dumps([{"type": "file", "path": f, "size": len(d),
                                              "oid": hashlib.sha1(d).hexdigest()} for f, d in sorted(files.items())]).encode(), 200
                self.send_response(code)
                if code == 404:
                    self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return True

            def do_GET(self):
                if not self._api():
                    self._answer(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo: str, path: str, data: bytes | Path, repo_type: str = "space") -> None:
        prefix = {"space": "spaces/", "dataset": "datasets/", "model": ""}[repo_type]
        self.files[f"{prefix}{repo}/{path}"] = data.read_bytes() if isinstance(data, Path) else data

    def gets(self, needle: str) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[0] == "GET" and needle in unquote(r[1])]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
