"""A local stand-in for the Hugging Face Hub's HTTP API, so downloads can be tested offline.

Two stdlib HTTP servers on 127.0.0.1 (free ports), each serving from daemon threads:

- the *hub* (``server.url``, pass it as ``endpoint=``) answers the API and ``/resolve`` calls;
- the *CDN* (``server.cdn_url``) serves LFS files, like the real Hub redirects LFS downloads
  to a signed storage URL on another host. Being another origin (another port) matters:
  ``huggingface_hub`` does not follow that redirect in its HEAD call and does not send the
  token there; tests can check that in ``server.requests``.

What is emulated (enough for ``snapshot_download``, ``hf_hub_download``, ``HfApi.model_info``,
``repo_info``, ``list_repo_tree`` and ``whoami`` of huggingface_hub 2.4):

``GET  /api/models/{repo}[/revision/{rev}][?blobs=true]``   sha + siblings (sizes, blobId, lfs)
``GET  /api/models/{repo}/tree/{rev}[/{path}][?recursive=true]``  files and folders
``HEAD|GET /{repo}/resolve/{rev}/{path}``   X-Repo-Commit, ETag; LFS files answer 302 to the CDN
                                            with X-Linked-Etag (sha256) and X-Linked-Size
``HEAD|GET {cdn}/lfs/{sha256}/{path}``     the bytes, with Range support (206 / 416)
``GET  /api/whoami-v2``                    200 with the right token, 401 otherwise

No Xet headers (X-Xet-Hash, Link rel=xet-auth) are ever sent and tree entries carry no
``xetHash``, so clients always take the plain HTTP download path.

Switches, per test::

    with HubServer() as server:
        sha = server.add_repo("org/model", {"model_index.json": b"{}"}, gated=True)
        server.token = "hf_test"                  # the token that has access to gated repos
        server.drop_after_bytes["unet/w.safetensors"] = 1000  # once: send 1000 bytes, hang up
        server.hold_after_bytes["unet/w.safetensors"] = 1000  # once: send 1000 bytes, then
                                                  # only a trickle until server.release_holds()
        server.holding.wait(10)                   # set once a response reached its hold point
        server.bytes_per_second = 1_000_000       # throttle every body (None: full speed)
        server.fail_next["config.json"] = 503     # once: answer this status for that file
        server.fail_when = lambda r: 503 if r.method == "HEAD" else None  # any rule, per request
        server.lfs_via_cdn = False                # serve LFS files from /resolve directly
        server.requests                           # [RecordedRequest(server, method, path, headers)]
        server.count("GET", "/resolve/", server="hub")  # how many such requests
        server.range_headers("unet/w.safetensors")  # Range headers of the GETs for that file

File switches are keyed by the path in the repo and apply to whichever server sends the bytes
(the CDN for LFS files); ``drop_after_bytes`` and ``hold_after_bytes`` count body bytes of that
one response, so after a ``Range`` request they count from the range start. A held response keeps
sending HOLD_TRICKLE bytes every HOLD_TICK seconds: the client stays in its read loop (a cancel is
seen at the next chunk) but cannot finish the file before the test has seen what it waits for,
however fast or slow the machine is. Unknown repos answer 401 ``RepoNotFound``
without a token and 404 with one, as the real Hub does.

Gated repos follow the real Hub: the metadata API stays public, file downloads answer 401
(``X-Error-Code: GatedRepo``) without a token and 403 (``GatedRepo``) with a token other than
``server.token`` — huggingface_hub raises ``GatedRepoError`` for both.

Inference Providers (what ``InferenceClient`` of huggingface_hub 2.4 calls), on the hub server,
which stands in for the router too (``https://router.huggingface.co`` -> ``server.url``)::

    GET  /api/models/{id}?expand=inferenceProviderMapping   {provider: {status, providerId, task}}
    POST /hf-inference/models/{id}          {"inputs": prompt | base64 image, "parameters": {...}}
                                            -> image/png
    POST /together/v1/images/generations    {"prompt", "model", "seed", "reference_images", ...}
                                            -> {"data": [{"b64_json": ...}]}

    server.add_inference_model("org/flux", {"hf-inference": "text-to-image", "together": ...})
    server.inference_permission = False       # whoami: a fine-grained token without inference;
                                              # the routes answer 403
    server.inference_failures.append(InferenceFailure(429, headers={"Retry-After": "1"}))
                                              # the next inference requests answer these, in order
    server.hold_inference = lambda call: call.seed == 7   # held until server.release_inference()
    server.wait_held(2)                       # until 2 requests are being held
    server.inference_delay = 0.2              # seconds each answer takes (bench)
    server.inference_calls                    # [InferenceCall(provider, model, task, seed, ...)]

Every image is a PNG of the asked size whose pixels follow the prompt, the seed and the reference
photo's bytes: distinct seeds give distinct images.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

# Files stored with Git LFS on the emulated Hub (by name), like .gitattributes does on the real one.
LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx", ".msgpack", ".h5", ".gguf")
LAST_MODIFIED = "2024-05-01T12:00:00.000Z"
HOLD_TRICKLE = 64  # bytes a held response sends per tick: far too few to finish a file
HOLD_TICK = 0.02  # seconds


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as blobId / oid / ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    path: str
    data: bytes
    lfs: bool

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
            f"size {self.size}\n"
        ).encode()

    @property
    def oid(self) -> str:
        """The git blob id: of the LFS pointer file for LFS files, of the content otherwise."""
        return git_blob_sha1(self.pointer if self.lfs else self.data)

    @property
    def etag(self) -> str:
        """The ETag huggingface_hub stores the file under (blobs/<etag>)."""
        return self.sha256 if self.lfs else self.oid


@dataclass
class Repo:
    repo_id: str
    gated: bool
    commits: dict[str, dict[str, StoredFile]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


@dataclass(frozen=True)
class RecordedRequest:
    server: str  # "hub" or "cdn"
    method: str
    path: str  # with the query string
    headers: Mapping[str, str]  # names in lower case
    body: bytes = b""  # of a POST

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class InferenceModel:
    """A model Inference Providers serve: its mapping {provider: task} and who may use it."""

    repo_id: str
    providers: dict[str, str]  # provider -> task ("text-to-image", "image-to-image")
    status: str = "live"  # of every provider: "live", "staging" or "error"
    gated: bool = False
    accepted: bool = True  # whether the token's account accepted a gated model's licence
    pipeline_tag: str = "text-to-image"

    def provider_id(self, provider: str) -> str:
        """The model's id on the provider's side (hf-inference: the Hub id)."""
        return self.repo_id if provider == "hf-inference" else f"{provider}/{self.repo_id}"


@dataclass
class InferenceCall:
    """One inference request as the emulator read it."""

    provider: str
    model: str  # the provider's model id
    task: str
    prompt: str
    parameters: dict[str, Any]  # width, height, seed, num_inference_steps/steps, ...
    image: bytes | None  # the reference photo of an image-to-image request
    authorization: str | None
    received_at: float  # time.perf_counter() when the request line arrived
    seconds: float | None = None  # how long the answer took, once sent (None: not answered)
    status: int | None = None

    @property
    def seed(self) -> int | None:
        seed = self.parameters.get("seed")
        return None if seed is None else int(seed)


@dataclass
class InferenceFailure:
    """The answer of one inference request instead of an image."""

    status: int
    body: bytes = b'{"error": "Injected failure"}'
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    drop: bool = False  # hang up without answering (a dropped connection)


class HubServer:
    """The emulated Hub. Use as a context manager, or call start() and stop()."""

    def __init__(self, token: str = "hf_test") -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[RecordedRequest] = []
        self.drop_after_bytes: dict[str, int] = {}
        self.hold_after_bytes: dict[str, int] = {}
        self.holding = threading.Event()
        self._release = threading.Event()
        self.fail_next: dict[str, int] = {}
        self.bytes_per_second: float | None = None
        self.fail_when: Callable[[RecordedRequest], int | None] | None = None
        self.lfs_via_cdn = True
        self._blobs: dict[str, StoredFile] = {}  # sha256 -> file, what the CDN serves
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._hub: _Server | None = None
        self._cdn: _Server | None = None
        self._threads: list[threading.Thread] = []
        # Inference Providers
        self.inference_models: dict[str, InferenceModel] = {}
        self.inference_calls: list[InferenceCall] = []
        self.inference_failures: list[InferenceFailure] = []
        self.inference_permission = True
        self.inference_delay = 0.0
        self.hold_inference: Callable[[InferenceCall], bool] | None = None
        self._held = 0
        self.in_flight = 0  # inference requests read and not answered yet
        self.max_in_flight = 0
        self._held_changed = threading.Condition(self._lock)
        self._inference_release = threading.Event()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> HubServer:
        self._stopping.clear()
        self._hub = _Server(self, "hub")
        self._cdn = _Server(self, "cdn")
        for srv in (self._hub, self._cdn):
            thread = threading.Thread(
                target=srv.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"hub-emulator-{srv.role}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()  # throttled bodies stop writing
        self._inference_release.set()  # and held inference requests let go
        for srv in (self._hub, self._cdn):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
                srv.close_connections()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()
        self._hub = self._cdn = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._hub is not None, "start() the server first"
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        assert self._cdn is not None, "start() the server first"
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    # ------------------------------------------------------------ content

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        gated: bool = False,
        revision_sha: str | None = None,
        lfs: set[str] | None = None,
    ) -> str:
        """Add a repo, or a new commit on `main` when it exists. Returns the commit sha.

        LFS files are the ones named in `lfs`, else those with an LFS_SUFFIXES ending."""
        stored = {
            path: StoredFile(
                path, bytes(data), path in lfs if lfs is not None else path.endswith(LFS_SUFFIXES)
            )
            for path, data in files.items()
        }
        if revision_sha is None:
            digest = hashlib.sha1(repo_id.encode())
            for path in sorted(stored):
                digest.update(f"{path}\0{stored[path].oid}\0".encode())
            revision_sha = digest.hexdigest()
        with self._lock:
            repo = self.repos.get(repo_id)
            if repo is None:
                repo = self.repos[repo_id] = Repo(repo_id, gated)
            repo.gated = gated
            repo.commits[revision_sha] = stored
            repo.refs["main"] = revision_sha
            for item in stored.values():
                if item.lfs:
                    self._blobs[item.sha256] = item
        return revision_sha

    def add_inference_model(
        self, repo_id: str, providers: Mapping[str, str], **details: Any
    ) -> InferenceModel:
        """Serve `repo_id` through these providers ({provider: task}); see InferenceModel."""
        model = InferenceModel(repo_id, dict(providers), **details)
        with self._lock:
            self.inference_models[repo_id] = model
        return model

    # ------------------------------------------------------------ what happened

    def inference_seeds(self, answered_only: bool = False) -> list[int | None]:
        """The seeds of the inference requests so far, in arrival order."""
        return [
            call.seed
            for call in list(self.inference_calls)
            if not answered_only or call.status == 200
        ]

    def wait_held(self, count: int, timeout: float = 30.0) -> None:
        """Until `count` inference requests are being held (hold_inference)."""
        with self._held_changed:
            if not self._held_changed.wait_for(lambda: self._held >= count, timeout):
                raise AssertionError(f"{self._held} of {count} inference requests held")

    def release_inference(self) -> None:
        """Let held inference requests answer, and hold no more."""
        with self._lock:
            self.hold_inference = None
            release, self._inference_release = self._inference_release, threading.Event()
        release.set()

    def count(
        self, method: str | None = None, path_contains: str = "", server: str | None = None
    ) -> int:
        return sum(
            1
            for r in list(self.requests)
            if (method is None or r.method == method)
            and path_contains in unquote(r.path)
            and (server is None or r.server == server)
        )

    def range_headers(self, filename: str) -> list[str]:
        """The Range headers of the GET requests that fetched `filename` (hub or CDN)."""
        return [
            r.header("range") or ""
            for r in list(self.requests)
            if r.method == "GET" and unquote(urlsplit(r.path).path).endswith("/" + filename)
        ]

    def release_holds(self) -> None:
        """Let held responses (and holds not reached yet, which are dropped) finish."""
        with self._lock:
            self.hold_after_bytes.clear()
            release, self._release = self._release, threading.Event()
            self.holding.clear()
        release.set()

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------ helpers for the handler

    def _record(self, role: str, handler: BaseHTTPRequestHandler) -> RecordedRequest:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        record = RecordedRequest(role, handler.command, handler.path, headers)
        with self._lock:
            self.requests.append(record)
        return record

    def _pop(self, table: dict[str, int], path: str) -> int | None:
        with self._lock:
            return table.pop(path, None)


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer whose stop() does not wait on idle keep-alive connections."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, state: HubServer, role: str) -> None:
        self.state = state
        self.role = role
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-body (a cancel in a test) is not an error here

    def close_connections(self) -> None:
        """Wake up the handler threads blocked on keep-alive reads so they finish now."""
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Hub
    disable_nagle_algorithm = True  # else small responses wait on delayed ACKs (40 ms each)
    timeout = 10  # an idle keep-alive connection is dropped after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # ------------------------------------------------------------ dispatch

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_POST(self) -> None:
        """Inference Providers' routes (the hub server stands in for the router)."""
        state = self.server.state
        received_at = time.perf_counter()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with state._lock:
            state.requests.append(
                RecordedRequest(self.server.role, "POST", self.path, headers, body)
            )
        segments = [unquote(s) for s in urlsplit(self.path).path.strip("/").split("/")]
        try:
            if segments[:2] == ["hf-inference", "models"] and len(segments) >= 3:
                self._inference("hf-inference", "/".join(segments[2:]), body, received_at)
            elif segments == ["together", "v1", "images", "generations"]:
                self._inference("together", None, body, received_at)
            else:
                self._error(404, None, "Not found", head=False)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _dispatch(self, head: bool) -> None:
        state = self.server.state
        record = state._record(self.server.role, self)
        rule = state.fail_when
        if rule is not None and (status := rule(record)) is not None:
            self._error(status, None, "Injected failure", head=head)
            return
        split = urlsplit(self.path)
        segments = [unquote(s) for s in split.path.strip("/").split("/")] if split.path else []
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            if self.server.role == "cdn":
                self._cdn(segments, head)
            elif segments[:2] == ["api", "whoami-v2"]:
                self._whoami(head)
            elif segments[:2] == ["api", "models"]:
                self._api_models(segments[2:], query, head)
            else:
                self._resolve(segments, head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # ------------------------------------------------------------ responses

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        head: bool,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, payload: Any, *, head: bool, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._send(200, body, {"Content-Type": "application/json", **(headers or {})}, head=head)

    def _error(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        head: bool,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        extra = {"Content-Type": "application/json", "X-Error-Message": message, **(headers or {})}
        if code is not None:
            extra["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), extra, head=head)

    def _bearer(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

    # ------------------------------------------------------------ routes

    def _whoami(self, head: bool) -> None:
        if self._bearer() != self.server.state.token:
            self._error(401, None, "Invalid credentials in Authorization header", head=head)
            return
        token: dict[str, Any] = {"displayName": "t", "role": "read"}
        if not self.server.state.inference_permission:  # fine-grained, without inference
            token = {
                "displayName": "t",
                "role": "fineGrained",
                "fineGrained": {"global": ["discussion.write"], "scoped": []},
            }
        self._json(
            {
                "type": "user",
                "name": "test-user",
                "fullname": "Test User",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": token},
            },
            head=head,
        )

    def _find_repo(self, segments: list[str]) -> tuple[Repo | None, list[str]]:
        """Repo ids are `org/name` or (legacy) `name`: try the longest known one first."""
        repos = self.server.state.repos
        for size in (2, 1):
            repo = repos.get("/".join(segments[:size]))
            if repo is not None and len(segments) >= size:
                return repo, segments[size:]
        return None, segments

    def _repo_not_found(self, head: bool) -> None:
        self._error(
            401 if self._bearer() is None else 404,
            "RepoNotFound",
            "Repository not found",
            head=head,
        )

    def _api_models(self, segments: list[str], query: dict[str, str], head: bool) -> None:
        served = self.server.state.inference_models.get("/".join(segments))
        if served is not None:
            self._mapping(served, head)
            return
        repo, rest = self._find_repo(segments)
        if repo is None:
            self._repo_not_found(head)
            return
        if not rest:
            revision = "main"
        elif rest[0] in ("revision", "tree") and len(rest) >= 2:
            revision = rest[1]
        else:
            self._error(404, None, "Not found", head=head)
            return
        sha = repo.resolve(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
            return
        files = repo.commits[sha]
        if rest and rest[0] == "tree":
            self._tree(files, "/".join(rest[2:]), _truthy(query.get("recursive")), head)
            return
        blobs = _truthy(query.get("blobs"))
        siblings = []
        for item in sorted(files.values(), key=lambda f: f.path):
            sibling: dict[str, Any] = {"rfilename": item.path}
            if blobs:
                sibling.update(size=item.size, blobId=item.oid)
                if item.lfs:
                    sibling["lfs"] = {
                        "sha256": item.sha256,
                        "size": item.size,
                        "pointerSize": len(item.pointer),
                    }
            siblings.append(sibling)
        self._json(
            {
                "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
                "sha": sha,
                "lastModified": LAST_MODIFIED,
                "createdAt": LAST_MODIFIED,
                "private": False,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "library_name": "diffusers",
                "siblings": siblings,
                "usedStorage": sum(f.size for f in files.values()),
            },
            head=head,
        )

    def _mapping(self, model: InferenceModel, head: bool) -> None:
        """model_info(expand=["inferenceProviderMapping"]) (and the pipeline tag the hf-inference
        helper checks when a model is named by id)."""
        self._json(
            {
                "_id": hashlib.md5(model.repo_id.encode()).hexdigest()[:24],
                "id": model.repo_id,
                "pipeline_tag": model.pipeline_tag,
                "gated": "manual" if model.gated else False,
                "inferenceProviderMapping": {
                    provider: {
                        "status": model.status,
                        "providerId": model.provider_id(provider),
                        "task": task,
                    }
                    for provider, task in model.providers.items()
                },
            },
            head=head,
        )

    # ------------------------------------------------------------ Inference Providers

    def _inference(
        self, provider: str, model_id: str | None, body: bytes, received_at: float
    ) -> None:
        state = self.server.state
        payload = json.loads(body or b"{}")
        if provider == "together":
            model_id = str(payload.get("model") or "")
        served = next(
            (
                m
                for m in list(state.inference_models.values())
                if m.provider_id(provider) == model_id
            ),
            None,
        )
        task = served.providers.get(provider, "") if served else ""
        parameters, prompt, image = _inference_input(provider, task, payload)
        call = InferenceCall(
            provider=provider,
            model=model_id or "",
            task=task,
            prompt=prompt,
            parameters=parameters,
            image=image,
            authorization=self.headers.get("Authorization"),
            received_at=received_at,
        )
        with state._lock:
            state.inference_calls.append(call)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            hold = state.hold_inference is not None and state.hold_inference(call)
            release = state._inference_release
            if hold:
                state._held += 1
                state._held_changed.notify_all()
        try:
            self._answer_inference(provider, served, call, hold, release)
        finally:
            with state._lock:
                state.in_flight -= 1

    def _answer_inference(
        self,
        provider: str,
        served: InferenceModel | None,
        call: InferenceCall,
        hold: bool,
        release: threading.Event,
    ) -> None:
        state = self.server.state
        if hold:
            release.wait()
            with state._lock:
                state._held -= 1
                state._held_changed.notify_all()
            if state._stopping.is_set():
                self.close_connection = True
                return
        if state.inference_delay:
            time.sleep(state.inference_delay)  # the provider's own time to make the image
        status, content, headers = self._inference_answer(provider, served, call)
        if status is None:  # a dropped connection: no answer at all
            call.seconds = time.perf_counter() - call.received_at
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(status, content, headers, head=False)
        call.status = status
        call.seconds = time.perf_counter() - call.received_at

    def _inference_answer(
        self, provider: str, served: InferenceModel | None, call: InferenceCall
    ) -> tuple[int | None, bytes, dict[str, str]]:
        state = self.server.state
        as_json = {"Content-Type": "application/json"}
        if self._bearer() != state.token:
            return 401, b'{"error": "Invalid credentials in Authorization header"}', as_json
        if not state.inference_permission:
            message = (
                "This authentication method does not have sufficient permissions to call "
                "Inference Providers on behalf of user test-user"
            )
            return 403, json.dumps({"error": message}).encode(), as_json
        with state._lock:
            failure = state.inference_failures.pop(0) if state.inference_failures else None
        if failure is not None:
            if failure.drop:
                return None, b"", {}
            headers = {"Content-Type": failure.content_type, **failure.headers}
            return failure.status, failure.body, headers
        if served is None or provider not in served.providers:
            return 404, json.dumps({"error": f"Model {call.model} not found"}).encode(), as_json
        if served.gated and not served.accepted:
            message = (
                f"Access to model {served.repo_id} is restricted and you are not in the "
                f"authorized list. Visit https://huggingface.co/{served.repo_id} to ask for access."
            )
            return (
                403,
                json.dumps({"error": message}).encode(),
                {
                    **as_json,
                    "X-Error-Code": "GatedRepo",
                    "X-Error-Message": message,
                },
            )
        png = inference_image(call)
        if provider == "together":
            answer = {"data": [{"b64_json": base64.b64encode(png).decode()}]}
            return 200, json.dumps(answer).encode(), as_json
        return 200, png, {"Content-Type": "image/png"}

    def _tree(self, files: dict[str, StoredFile], prefix: str, recursive: bool, head: bool) -> None:
        prefix = prefix.strip("/")
        base = prefix + "/" if prefix else ""
        entries: dict[str, dict[str, Any]] = {}
        for item in sorted(files.values(), key=lambda f: f.path):
            if not item.path.startswith(base):
                continue
            rest = item.path[len(base) :].split("/")
            # the folders on the way, then the file itself
            for depth in range(1, len(rest)):
                if depth > 1 and not recursive:
                    break
                folder = base + "/".join(rest[:depth])
                entries.setdefault(
                    folder,
                    {
                        "type": "directory",
                        "oid": git_blob_sha1(folder.encode()),
                        "size": 0,
                        "path": folder,
                    },
                )
            if len(rest) == 1 or recursive:
                entry: dict[str, Any] = {
                    "type": "file",
                    "oid": item.oid,
                    "size": item.size,
                    "path": item.path,
                }
                if item.lfs:
                    entry["lfs"] = {
                        "oid": item.sha256,
                        "size": item.size,
                        "pointerSize": len(item.pointer),
                    }
                entries[item.path] = entry
        if prefix and not entries:
            self._error(404, "EntryNotFound", f"{prefix} does not exist", head=head)
            return
        self._json(list(entries.values()), head=head)

    def _resolve(self, segments: list[str], head: bool) -> None:
        state = self.server.state
        repo, rest = self._find_repo(segments)
        if repo is None or len(rest) < 3 or rest[0] != "resolve":
            self._repo_not_found(head)
            return
        revision, path = rest[1], "/".join(rest[2:])
        sha = repo.resolve(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
            return
        if repo.gated:
            token = self._bearer()
            if token is None:
                self._error(
                    401,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in.",
                    head=head,
                )
                return
            if token != state.token:
                self._error(
                    403,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted and you are not in the "
                    f"authorized list. Visit https://huggingface.co/{repo.repo_id} to ask for "
                    "access.",
                    head=head,
                )
                return
        item = repo.commits[sha].get(path)
        if item is None:
            self._error(
                404,
                "EntryNotFound",
                f"{path} does not exist",
                head=head,
                headers={"X-Repo-Commit": sha},
            )
            return
        if (status := state._pop(state.fail_next, path)) is not None:
            self._error(status, None, "Injected failure", head=head)
            return
        common = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if item.lfs and state.lfs_via_cdn:
            location = f"{state.cdn_url}/lfs/{item.sha256}/{quote(path)}"
            self._send(
                302,
                b"",
                {
                    **common,
                    "Location": location,
                    "ETag": f'"{item.oid}"',
                    "X-Linked-Etag": f'"{item.sha256}"',
                    "X-Linked-Size": str(item.size),
                },
                head=head,
            )
            return
        headers = {**common, "ETag": f'"{item.etag}"'}
        if item.lfs:
            headers.update({"X-Linked-Etag": f'"{item.sha256}"', "X-Linked-Size": str(item.size)})
        self._file(item, headers, head)

    def _cdn(self, segments: list[str], head: bool) -> None:
        state = self.server.state
        is_lfs = len(segments) >= 3 and segments[0] == "lfs"
        item = state._blobs.get(segments[1]) if is_lfs else None
        if item is None:
            self._send(404, b"NoSuchKey", {"Content-Type": "text/plain"}, head=head)
            return
        if (status := state._pop(state.fail_next, item.path)) is not None:
            self._send(status, b"Injected failure", {"Content-Type": "text/plain"}, head=head)
            return
        name = item.path.rsplit("/", 1)[-1]
        headers = {
            "ETag": f'"{item.sha256}"',
            "Content-Disposition": f'inline; filename="{name}"',
        }
        self._file(item, headers, head)

    def _file(self, item: StoredFile, headers: dict[str, str], head: bool) -> None:
        """The bytes of a file, honouring `Range: bytes=N-[M]`."""
        state = self.server.state
        size = item.size
        start, end, status = 0, size - 1, 200
        spec = self.headers.get("Range")
        if spec and spec.startswith("bytes=") and "," not in spec:
            first, _, last = spec[len("bytes=") :].partition("-")
            try:
                start = int(first)
                end = min(int(last), size - 1) if last else size - 1
            except ValueError:
                start, end = 0, size - 1
            else:
                if start >= size or start > end:
                    self._send(416, b"", {"Content-Range": f"bytes */{size}", **headers}, head=head)
                    return
                status = 206
        body = item.data[start : end + 1]
        self.send_response(status)
        for name, value in {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            **headers,
        }.items():
            self.send_header(name, value)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        drop = state._pop(state.drop_after_bytes, item.path)
        if drop is not None:
            body = body[:drop]
        with state._lock:
            hold = state.hold_after_bytes.pop(item.path, None)
            release = state._release
        if hold is not None:
            self._write_body(body[:hold])
            self.wfile.flush()
            state.holding.set()
            body = self._trickle(body[hold:], release)
            if state._stopping.is_set():
                self.close_connection = True
                return
        self._write_body(body)
        if drop is not None:
            self.close_connection = True  # hang up with the body unfinished
            self.wfile.flush()

    def _trickle(self, body: bytes, release: threading.Event) -> bytes:
        """Send `body` a few bytes a tick until `release` is set; return what is left."""
        state = self.server.state
        while body and not release.wait(HOLD_TICK) and not state._stopping.is_set():
            self.wfile.write(body[:HOLD_TRICKLE])
            self.wfile.flush()
            body = body[HOLD_TRICKLE:]
        return body

    def _write_body(self, body: bytes) -> None:
        state = self.server.state
        rate = state.bytes_per_second
        if not rate:
            self.wfile.write(body)
            return
        chunk = max(1024, min(64 * 1024, int(rate / 50)))
        started = time.monotonic()
        sent = 0
        view = memoryview(body)
        while sent < len(body):
            if state._stopping.is_set():
                self.close_connection = True
                return
            piece = view[sent : sent + chunk]
            self.wfile.write(piece)
            sent += len(piece)
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


def _inference_input(
    provider: str, task: str, payload: dict[str, Any]
) -> tuple[dict[str, Any], str, bytes | None]:
    """(parameters, prompt, reference photo) of a request, as each provider's helper sends it."""
    if provider == "hf-inference":
        parameters = dict(payload.get("parameters") or {})
        inputs = payload.get("inputs") or ""
        if task == "image-to-image":
            return parameters, str(parameters.get("prompt") or ""), base64.b64decode(inputs)
        return parameters, str(inputs), None
    parameters = {
        key: value
        for key, value in payload.items()
        if key not in ("prompt", "model", "response_format", "reference_images", "image_url")
    }
    references = payload.get("reference_images") or (
        [payload["image_url"]] if payload.get("image_url") else []
    )
    image = base64.b64decode(references[0].split(",", 1)[1]) if references else None
    return parameters, str(payload.get("prompt") or ""), image


def inference_image(call: InferenceCall) -> bytes:
    """A PNG of the asked size whose pixels follow the prompt, the seed and the photo."""
    from PIL import Image

    width = int(call.parameters.get("width") or 512)
    height = int(call.parameters.get("height") or 512)
    digest = hashlib.sha256(
        f"{call.model}|{call.prompt}|{call.seed}|".encode() + (call.image or b"")
    ).digest()
    tile = Image.frombytes("RGB", (4, 2), digest[:24])  # 8 pixels from the digest
    image = tile.resize((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")
