"""A local fake of the GitLab (v4) and Gitea (v1) user-key APIs on 127.0.0.1 (http.server in a thread, port 0).

Serves the documented response shapes (reference git-and-platforms.md §9.4, §10.4) with a small page size so every
listing spans several pages, records every request (path, query, headers), and injects faults per path: an HTTP
status, a slow answer, a redirect.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Fault:
    status: int = 0  # answer with this status (and a JSON error body)
    delay: float = 0.0  # sleep before answering
    location: str = ""  # with a 3xx status: the Location header
    times: int = 1  # how many requests it applies to (then it is used up); -1: forever


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeForge:
    kind: str  # "gitlab" | "gitea"
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # username -> {"id", "state", "keys": [...], ...}
    page_cap: int = 2  # the server's maximum page size (forces pagination)
    faults: dict[str, list[Fault]] = field(default_factory=dict)  # path (no query) -> faults, used in order
    seen: list[Seen] = field(default_factory=list)
    send_pagination_headers: bool = True
    url: str = ""

    def add_user(self, name: str, keys: list[dict[str, Any]], **extra: Any) -> None:
        uid = 100 + len(self.users)
        self.users[name] = {"id": uid, "username": name, "state": "active", "keys": keys, **extra}

    def fault(self, path: str, fault: Fault) -> None:
        self.faults.setdefault(path, []).append(fault)

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    # -- routing ---------------------------------------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if self.kind == "gitlab":
            return self._gitlab(path, query)
        return self._gitea(path, query)

    def _page(self, items: list[Any], page: int, size: int) -> tuple[list[Any], int]:
        size = max(1, min(size, self.page_cap))
        pages = max(1, -(-len(items) // size))
        return items[(page - 1) * size: page * size], pages

    def _gitlab(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if path == "/api/v4/users":
            name = query.get("username", "")
            return 200, {}, [
                {"id": u["id"], "username": u["username"], "name": u["username"].title(), "state": u["state"],
                 "avatar_url": None, "web_url": f"{self.url}/{u['username']}"}
                for u in self.users.values() if u["username"].casefold() == name.casefold()
            ]
        parts = path.split("/")
        if len(parts) == 6 and parts[:4] == ["", "api", "v4", "users"] and parts[5] == "keys":
            user = next((u for u in self.users.values() if str(u["id"]) == parts[4]), None)
            if user is None:
                return 404, {}, {"message": "404 User Not Found"}
            page = int(query.get("page", "1"))
            per_page = int(query.get("per_page", "20"))
            items, pages = self._page(user["keys"], page, per_page)
            headers = {"X-Page": str(page), "X-Per-Page": str(min(per_page, self.page_cap)),
                       "X-Total": str(len(user["keys"])), "X-Total-Pages": str(pages),
                       "X-Next-Page": str(page + 1) if page < pages else "",
                       "X-Prev-Page": str(page - 1) if page > 1 else ""}
            return 200, headers if self.send_pagination_headers else {}, items
        return 404, {}, {"message": "404 Not Found"}

    def _gitea(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        parts = path.split("/")
        if len(parts) >= 5 and parts[:4] == ["", "api", "v1", "users"]:
            name = unquote(parts[4])
            user = next((u for u in self.users.values() if u["username"].casefold() == name.casefold()), None)
            if user is None:
                return 404, {}, {"message": "user redirect does not exist [name: %s]" % name, "url": self.url}
            if len(parts) == 5:
                return 200, {}, {"id": user["id"], "login": user["username"], "full_name": "", "email": "",
                                 "active": False, "prohibit_login": user.get("prohibit_login", False)}
            if len(parts) == 6 and parts[5] == "keys":
                page = int(query.get("page", "1"))
                limit = int(query.get("limit", "30"))
                items, _ = self._page(user["keys"], page, limit)
                headers = {"X-Total-Count": str(len(user["keys"]))} if self.send_pagination_headers else {}
                return 200, headers, items
        return 404, {}, {"message": "not found"}


def _handler(forge: FakeForge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: without this, 40 ms per request

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            forge.seen.append(Seen(parts.path, query, {k: v for k, v in self.headers.items()}))
            queue = forge.faults.get(parts.path, [])
            fault = queue[0] if queue else None
            if fault is not None:
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        queue.pop(0)
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.status:
                    headers = {"Location": fault.location} if fault.location else {}
                    return self._send(fault.status, headers, {"message": f"fault {fault.status}"})
            status, headers, body = forge.answer(parts.path, query)
            self._send(status, headers, body)

        def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()  # bytes: sent as they are
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                pass

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is the point of some tests, not an error


@contextmanager
def serve(forge: FakeForge, *, tls: tuple[Path, Path] | None = None) -> Iterator[FakeForge]:
    """Serve ``forge`` on 127.0.0.1 (https with ``tls=(certfile, keyfile)``)."""
    server = _QuietServer(("127.0.0.1", 0), _handler(forge))
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    forge.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield forge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 (cert, key) made with cryptography."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake forge")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "forge.crt", directory / "forge.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
