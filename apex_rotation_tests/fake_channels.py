"""A local HTTP server that plays the Telegram Bot API, a Discord webhook and the Notion API, with faults.

Real HTTP on 127.0.0.1 (ephemeral port, a thread the test stops), so `requests` meets timeouts, resets and
status codes as in production. It checks the credentials the way the providers do (bot token in the path,
webhook token in the path, `Authorization: Bearer` + `Notion-Version`), and it keeps what it *accepted*:
`accepted` lists (channel, alert id) of every message the "provider" took, which is what a test counts.

Routes (a fault queue each): `sendMessage`, `sendDocument` (Telegram), `discord` (the webhook),
`notion_query` (`POST /v1/databases/<id>/query`), `notion_pages` (`POST /v1/pages`).

Faults (`inject(route, *faults)`), each consumed by one request (`ok()` lets one through):
* `status(code, retry_after=…, body=…)`: answer an error without accepting (429, 500, 400, …);
* `slow(delay_s, accept=…)`: answer after `delay_s` (longer than the client's timeout: a timeout); with
  `accept=True` the message is accepted first (delivered, response lost), else not;
* `drop(accept=…)`: read the request, then reset the connection, after accepting it or before;
* `hold(accept=…)`: block (after accepting or before) until the server stops, and set `held` so a test can
  kill the sender at that moment.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import itertools
import json
import re
import socket
import struct
import threading
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from apex_rotation_tests.local_server import LocalServer

TELEGRAM_TOKEN = "123456789:AAHfakeTelegramToken_abcdefghijklmnopqrstu"
TELEGRAM_CHAT = "-1001234567890"
DISCORD_ID = "112233445566778899"
DISCORD_TOKEN = "discordWebhookSecretToken-abcdefghijklmnopqrstuvwxyz0123"
NOTION_TOKEN = "secret_notionIntegrationToken0123456789abcdefghijk"
NOTION_DB = "0f4d2e1c9b8a4f7e8d6c5b4a39281706"
_ALERT_ID = re.compile(r"alert ([0-9a-f]{16})")


@dataclass(frozen=True)
class Fault:
    kind: str  # ok | status | slow | drop | hold
    status: int = 200
    retry_after: str | None = None
    body: Any = None
    delay_s: float = 0.0
    accept: bool = False


def ok() -> Fault:
    """Serve this request as usual (to aim the next fault at a later request)."""
    return Fault("ok")


def status(code: int, retry_after: float | str | None = None, body: Any = None) -> Fault:
    return Fault(
        "status", status=code, retry_after=None if retry_after is None else str(retry_after), body=body
    )


def telegram_429(retry_after: int) -> Fault:
    """Telegram's form: the wait only in the body (`parameters.retry_after`), no header."""
    body = {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }
    return status(429, body=body)


def slow(delay_s: float, accept: bool = False) -> Fault:
    return Fault("slow", delay_s=delay_s, accept=accept)


def drop(accept: bool = False) -> Fault:
    return Fault("drop", accept=accept)


def hold(accept: bool = False) -> Fault:
    return Fault("hold", accept=accept)


@dataclass(frozen=True)
class Accepted:
    channel: str
    kind: str  # message | document | page
    alert_id: str | None
    body: Any


class FakeChannels(LocalServer):
    """Context manager: `with FakeChannels() as srv: ... srv.url ... srv.counts("telegram")`."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[Accepted] = []
        self.requests: list[tuple[str, str]] = []  # (route, path) of every request
        self.held = threading.Event()
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._ids = itertools.count(1001)
        self._start(_handler(self), "fake-channels")

    def env(self) -> dict[str, str]:
        """The secrets as the environment holds them (the Discord URL points at the real host)."""
        return {
            "APEX_TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
            "APEX_TELEGRAM_CHAT_ID": TELEGRAM_CHAT,
            "APEX_DISCORD_WEBHOOK_URL": f"https://discord.com/api/webhooks/{DISCORD_ID}/{DISCORD_TOKEN}",
            "APEX_NOTION_TOKEN": NOTION_TOKEN,
        }

    def alerts_config(self, **overrides: Any) -> dict:
        """The `alerts` config section pointing every channel here (fast retries, no pacing)."""
        return {
            "telegram_api_url": self.url,
            "discord_api_url": self.url,
            "notion_api_url": self.url,
            "notion_database_id": NOTION_DB,
            "request_timeout_s": 0.5,
            "max_retries": 4,
            "backoff_base_s": 0.01,
            "backoff_max_s": 5.0,
            "telegram_min_interval_s": 0.0,
            "notion_min_interval_s": 0.0,
            **overrides,
        }

    def inject(self, route: str, *faults: Fault) -> None:
        with self._lock:
            self._faults[route].extend(faults)

    def counts(self, channel: str, kind: str | None = None) -> Counter:
        """How many times each alert id was accepted on a channel (messages / pages by default)."""
        default = {"telegram": "message", "discord": "message", "notion": "page"}
        want = kind or default[channel]
        with self._lock:
            return Counter(a.alert_id for a in self.accepted if a.channel == channel and a.kind == want)

    def route_count(self, route: str) -> int:
        with self._lock:
            return sum(1 for r, _ in self.requests if r == route)

    # -- provider behaviour --------------------------------------------------------------------------
    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(route)
            return queue.popleft() if queue else None

    def _accept(self, channel: str, kind: str, alert_id: str | None, body: Any) -> None:
        with self._lock:
            self.accepted.append(Accepted(channel, kind, alert_id, body))

    def _auth(self, route: str, path: str, headers, query: dict) -> tuple[int, Any, dict] | None:
        if route in ("sendMessage", "sendDocument") and not path.startswith(f"/bot{TELEGRAM_TOKEN}/"):
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, {}
        if route == "discord" and path != f"/api/webhooks/{DISCORD_ID}/{DISCORD_TOKEN}":
            return 401, {"message": "Invalid Webhook Token", "code": 50027}, {}
        if route.startswith("notion"):
            if headers.get("Authorization") != f"Bearer {NOTION_TOKEN}":
                return 401, {"object": "error", "status": 401, "code": "unauthorized"}, {}
            if not headers.get("Notion-Version"):
                return 400, {"object": "error", "status": 400, "code": "missing_version"}, {}
        return None

    def accept(self, route: str, body: Any, query: dict) -> tuple[int, Any, dict]:
        """Take the message (record it) and answer as the provider does."""
        new_id = next(self._ids)
        if route == "sendMessage":
            if body.get("chat_id") != TELEGRAM_CHAT or body.get("parse_mode") != "HTML":
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, {}
            self._accept("telegram", "message", _alert_id(body.get("text", "")), body)
            return 200, {"ok": True, "result": {"message_id": new_id, "chat": {"id": TELEGRAM_CHAT}}}, {}
        if route == "sendDocument":
            self._accept("telegram", "document", _alert_id(body.get("caption", "")), body)
            return 200, {"ok": True, "result": {"message_id": new_id}}, {}
        if route == "discord":
            payload = json.loads(body["payload_json"]) if "payload_json" in body else body
            footer = payload["embeds"][0]["footer"]["text"]
            self._accept("discord", "message", _alert_id(footer), {**payload, "files": body.get("files", [])})
            if query.get("wait") != "true":
                return 204, None, {}
            return (
                200,
                {"id": str(new_id), "type": 0},
                {"X-RateLimit-Remaining": "4", "X-RateLimit-Reset-After": "0"},
            )
        if route == "notion_pages":
            props = body["properties"]
            alert_id = props["Alert ID"]["rich_text"][0]["text"]["content"]
            page_id = str(uuid.UUID(int=new_id))
            self._accept("notion", "page", alert_id, {"id": page_id, "properties": props})
            return 200, {"object": "page", "id": page_id}, {}
        if route == "notion_query":
            wanted = body["filter"]["rich_text"]["equals"]
            with self._lock:
                pages = [a.body for a in self.accepted if a.channel == "notion" and a.alert_id == wanted]
            return 200, {"object": "list", "results": [{"object": "page", "id": p["id"]} for p in pages]}, {}
        return 404, {"error": f"fake channels: unknown route {route}"}, {}


def _alert_id(text: str) -> str | None:
    m = _ALERT_ID.search(text or "")
    return m.group(1) if m else None


def _route(path: str) -> str:
    if path.startswith("/bot"):
        return path.rsplit("/", 1)[-1]
    if path.startswith("/api/webhooks/"):
        return "discord"
    if path == "/v1/pages":
        return "notion_pages"
    if path.startswith("/v1/databases/") and path.endswith("/query"):
        return "notion_query"
    return "unknown"


def _parse_body(content_type: str, raw: bytes) -> Any:
    if content_type.startswith("multipart/form-data"):
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        out: dict[str, Any] = {"files": []}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            if part.get_filename():
                out["files"].append({"field": name, "filename": part.get_filename(), "size": len(data)})
            else:
                out[name] = data.decode()
        return out
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


def _handler(server: FakeChannels) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with server._lock:
                server._sockets.add(self.connection)

        def finish(self) -> None:
            with server._lock:
                server._sockets.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            route = _route(parts.path)
            query = dict(parse_qsl(parts.query))
            body = _parse_body(self.headers.get("Content-Type", ""), raw)
            with server._lock:
                server.requests.append((route, parts.path))
            auth = server._auth(route, parts.path, self.headers, query)
            if auth is not None:
                self._send(*auth)
                return
            fault = server._take_fault(route)
            if fault is None or fault.kind == "ok":
                self._send(*server.accept(route, body, query))
                return
            if fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                self._send(fault.status, fault.body or {"message": f"injected {fault.status}"}, headers)
                return
            answer = server.accept(route, body, query) if fault.accept else None
            if fault.kind == "drop":
                self._reset()
                return
            if fault.kind == "hold":
                server.held.set()
                server._stopping.wait()
                self._reset()
                return
            if server._stopping.wait(fault.delay_s) or answer is None:  # slow: the client has given up
                self._reset()
                return
            self._send(*answer)

        def _send(self, status_code: int, data: Any, headers: dict[str, str]) -> None:
            payload = b"" if data is None else json.dumps(data).encode()
            try:
                self.send_response(status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True

        def _reset(self) -> None:
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            self.close_connection = True

    return Handler
