"""One visitor of a Gradio server, speaking its HTTP API directly: what a browser sends, at a fraction of the CPU.

The load test's users run on the same two cores as the server they measure. gradio_client spends about as much CPU
per request as the server does (threads, status polling, API parsing), so at 16 clients the clients' own work made
up most of every wait, even against a server that does nothing. This user makes the same calls with the standard
library: it uploads each file (POST /gradio_api/upload), queues the call (POST /gradio_api/call/<name>), reads the
answer's event stream (GET /gradio_api/call/<name>/<event_id>), then downloads every file the answer names, as a
page showing it would. Arguments left off the end take the endpoint's defaults from /gradio_api/info, as
gradio_client fills them. One keep-alive connection and one session per user, as one open page has (gradio builds
each new session a copy of the app's config: a user who sent none would cost the server that on every call).

    user = HttpUser("http://127.0.0.1:7860/")
    user.predict("/classify_digit", [{"path": "digit.png", "meta": {"_type": "gradio.FileData"}}])
"""

import http.client
import json
import mimetypes
import uuid
from pathlib import Path
from urllib.parse import urlsplit


class AppError(Exception):
    """The server answered the call with an error event (a gr.Error, or an unexpected failure)."""


class HttpUser:
    def __init__(self, url: str, timeout: float = 600):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None
        self.defaults: dict[str, list] | None = None  # api name -> its parameters' defaults, read once
        self.session_hash = uuid.uuid4().hex[:12]

    def with_defaults(self, api_name: str, args: list) -> list:
        """args, followed by the defaults of the parameters they leave out (an error if one of those has none)."""
        if self.defaults is None:
            info = self._json("GET", "/gradio_api/info")["named_endpoints"]
            self.defaults = {
                name: [(p["parameter_has_default"], p.get("parameter_default")) for p in e["parameters"]] for name, e in info.items()
            }
        wanted = self.defaults.get(api_name)
        if wanted is None:
            raise AppError(f"no endpoint {api_name}")
        missing = wanted[len(args) :]
        if not all(has for has, _ in missing):
            raise AppError(f"{api_name} takes {len(wanted)} arguments, and the ones after the first {len(args)} have no default")
        return [*args, *(value for _, value in missing)]

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> http.client.HTTPResponse:
        """Send one request on the kept-alive connection, reconnecting once if the server had closed it."""
        for attempt in (0, 1):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.connection.request(method, path, body=body, headers=headers or {})
                return self.connection.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        response = self._request(method, path, body, headers)
        data = response.read()
        if response.status != 200:
            raise AppError(f"HTTP {response.status} from {path}: {data[:200]!r}")
        return json.loads(data)

    def upload(self, path: str) -> str:
        """The file's path on the server after a multipart upload, as the browser's file input sends it."""
        boundary = uuid.uuid4().hex
        name = Path(path).name
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\nContent-Type: {kind}\r\n\r\n'.encode()
            + Path(path).read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return self._json("POST", "/gradio_api/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})[0]

    def _prepare(self, value):
        """Arguments as the API takes them: every local file (a handle_file dict) uploaded and replaced by its server path."""
        if isinstance(value, dict) and value.get("meta", {}).get("_type") == "gradio.FileData":
            return {"path": self.upload(value["path"]), "meta": {"_type": "gradio.FileData"}}
        if isinstance(value, list):
            return [self._prepare(v) for v in value]
        return value

    def predict(self, api_name: str, args: list) -> list:
        """Call one named endpoint and return its final output data, after downloading the files in it."""
        name = api_name.strip("/")
        data = self._prepare(self.with_defaults("/" + name, list(args)))
        body = json.dumps({"data": data, "session_hash": self.session_hash}).encode()
        event_id = self._json("POST", f"/gradio_api/call/{name}", body, {"Content-Type": "application/json"})["event_id"]
        response = self._request("GET", f"/gradio_api/call/{name}/{event_id}")
        if response.status != 200:
            raise AppError(f"HTTP {response.status} for the event stream of {api_name}")
        event, output = None, None
        for raw in response:  # server-sent events: "event: <kind>" then "data: <json>", a blank line between
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                output = json.loads(line[5:].strip() or "null")
                if event == "error":
                    response.read()
                    raise AppError(str(output)[:300])
        if event != "complete":
            raise AppError(f"the event stream of {api_name} ended without an answer")
        for url in file_urls(output):
            self.download(url)
        return output

    def download(self, url: str) -> int:
        """GET one file the answer names; its size in bytes."""
        parts = urlsplit(url)
        response = self._request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        size = len(response.read())
        if response.status != 200:
            raise AppError(f"HTTP {response.status} downloading {parts.path}")
        return size

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def file_urls(value) -> list[str]:
    """The URL of every file in an answer (FileData dicts, nested in lists and dicts such as a gallery's)."""
    if isinstance(value, dict):
        if value.get("meta", {}).get("_type") == "gradio.FileData" and value.get("url"):
            return [value["url"]]
        return [u for v in value.values() for u in file_urls(v)]
    if isinstance(value, list):
        return [u for v in value for u in file_urls(v)]
    return []


def stream_event(url: str, elem_id: str) -> int:
    """The id of the event a streaming component (by its elem_id) sets off, read from the app's /config."""
    import urllib.request

    with urllib.request.urlopen(url.rstrip("/") + "/config", timeout=30) as response:
        config = json.load(response)
    component = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    for index, dependency in enumerate(config["dependencies"]):
        if [component, "stream"] in [list(t) for t in dependency["targets"]]:
            return dependency.get("id", index)
    raise AppError(f"nothing streams from #{elem_id}")


def stream_frames(url: str, session_hash: str, fn_index: int, frames: list[str], before: list = (), after: list = ()) -> list[dict]:
    """Drive a streaming event as a browser's webcam does: join the queue with the first frame (a data URL), then send
    the next one each time an answer comes back (Gradio's frontend sends no new frame while one is pending), then
    close the stream. before, after: the event's other inputs around the frame (session state goes as None).
    Returns every streamed output."""
    parts = urlsplit(url)
    listen = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=120)
    send = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=120)

    def body(frame: str) -> bytes:
        data = [*before, {"url": frame, "meta": {"_type": "gradio.FileData"}}, *after]
        return json.dumps({"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None}).encode()

    def post(path: str, payload: bytes = b"{}") -> dict:
        send.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
        response = send.getresponse()
        answer = response.read()
        if response.status != 200:
            raise AppError(f"HTTP {response.status} from {path}: {answer[:200]!r}")
        return json.loads(answer)

    event_id = post("/gradio_api/queue/join", body(frames[0]))["event_id"]
    listen.request("GET", f"/gradio_api/queue/data?session_hash={session_hash}")
    response = listen.getresponse()
    outputs, sent = [], 1
    try:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") not in (None, event_id):
                continue
            kind = message.get("msg")
            if kind == "process_streaming":
                if not message.get("success", True):
                    raise AppError(str(message.get("output"))[:300])
                outputs.append(message.get("output"))
                if sent == len(frames):
                    post(f"/gradio_api/stream/{event_id}/close")
                    sent += 1
                elif sent < len(frames):
                    post(f"/gradio_api/stream/{event_id}", body(frames[sent]))
                    sent += 1
            elif kind == "process_completed":
                if not message.get("success", True):
                    raise AppError(str(message.get("output"))[:300])
                break
    finally:
        listen.close()
        send.close()
    return outputs
