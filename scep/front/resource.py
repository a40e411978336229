"""
The HTTP face of the front: routes SCEP requests to an authority.

C{GET|POST /scep[/<endpoint>[/anything]]?operation=...} and
C{/cgi-bin/pkiclient.exe}.  The front reads the endpoint's wrapper config,
checks the service switch and C{iprange}, keeps only the whitelisted URL
parameters, decodes the message and hands the bytes to the authority.  It
holds no key and decrypts nothing.  Every error it writes is a one-line
C{text/plain} body: never HTML, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from scep import commands
from scep.config import ConfigError
from scep.front.query import QueryError, decode_message, parse_query, text_value
from scep.front.wrapper import WrapperConfig, WrapperConfigs

log = Logger()

MAX_HEADERS = 65536
"""Bytes of request line plus headers a GET may carry (a long PKIOperation)."""

MAX_BODY = 1024 * 1024
"""Bytes a POST body may carry."""

IDLE_TIMEOUT = 60
"""Seconds a connection may stay idle (Twisted's default is 12 hours)."""

CONTENT_TYPES = {
    "GetCACaps": b"text/plain",
    "PKIOperation": b"application/x-pki-message",
    "GetNextCACert": b"application/x-x509-next-ca-cert",
}


class Backend(Protocol):
    def call(self, command: type[amp.Command], **arguments: Any) -> Awaitable[dict[str, Any]]: ...


class HTTPError(Exception):
    """Answer with this status and a one-line C{text/plain} reason."""

    def __init__(self, status: int, reason: str, headers: dict[bytes, bytes] | None = None) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


def _plain_response(status: int, reason: str) -> bytes:
    body = reason.encode("utf-8") + b"\n"
    phrase = http.RESPONSES.get(status, b"Error")
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, phrase, len(body), body))


class SCEPChannel(http.HTTPChannel):
    """
    An HTTP channel with room for a long GET and a text answer when the
    request is too large or malformed.
    """

    totalHeadersSize = MAX_HEADERS
    MAX_LENGTH = MAX_HEADERS

    def lineLengthExceeded(self, line: bytes) -> None:
        log.info("refused a request line or header over {limit} bytes", limit=MAX_HEADERS)
        assert self.transport is not None
        self.transport.write(_plain_response(414, f"request line or header over {MAX_HEADERS} bytes"))
        self.transport.loseConnection()

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted answers a bare 400 here; clients deserve a reason.
        log.info("refused a malformed or oversized HTTP request")
        assert self.transport is not None
        self.transport.write(_plain_response(400, "malformed or oversized HTTP request"))
        self.loseConnection()


class SCEPRequest(Request):
    """A request that refuses a body over L{MAX_BODY} before reading it."""

    _received = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > MAX_BODY:
            self._refuse()
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > MAX_BODY:
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self) -> None:
        self._refused = True
        log.info("refused a body over {limit} bytes", limit=MAX_BODY)
        channel = self.channel
        assert channel is not None and channel.transport is not None
        channel.transport.write(_plain_response(413, f"request body over {MAX_BODY} bytes"))
        # Read nothing more from this connection (as HTTPChannel does once
        # it is not persistent), and close it.
        channel.dataReceived = lambda data: None  # type: ignore[method-assign]
        channel.transport.loseConnection()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:
            super().requestReceived(command, path, version)

    def processingFailed(self, reason: Any) -> None:
        log.failure("unhandled error answering {path}", reason, path=self.path)
        self._answer_text(500, "internal error")

    def _answer_text(self, status: int, reason: str, headers: dict[bytes, bytes] | None = None) -> None:
        body = reason.encode("utf-8") + b"\n"
        self.setResponseCode(status)
        self.setHeader(b"content-type", b"text/plain; charset=utf-8")
        self.setHeader(b"content-length", b"%d" % len(body))
        for name, value in (headers or {}).items():
            self.setHeader(name, value)
        self.write(body)
        self.finish()


def endpoint_of(path: bytes) -> str | None:
    """
    The endpoint a request path names, or C{None} if it is no SCEP path.

    C{/scep} and C{/cgi-bin/pkiclient.exe} are the C{default} endpoint;
    C{/scep/<endpoint>} and anything below it name C{<endpoint>}.
    """
    segments = [s for s in path.split(b"?", 1)[0].split(b"/") if s]
    if segments == [b"cgi-bin", b"pkiclient.exe"]:
        return "default"
    if not segments or segments[0] != b"scep":
        return None
    if len(segments) == 1:
        return "default"
    try:
        return segments[1].decode("ascii")
    except UnicodeDecodeError:
        return "default"


class SCEPResource(Resource):
    """Every path ends here; L{endpoint_of} decides what it is."""

    isLeaf = True

    def __init__(self, configs: WrapperConfigs, backend: Backend, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.configs = configs
        self.backend = backend
        self.enabled = enabled
        self.clock = clock

    def render(self, request: SCEPRequest) -> Any:  # type: ignore[override]
        if request.method not in (b"GET", b"POST", b"HEAD"):
            request._answer_text(405, "only GET and POST are allowed", {b"allow": b"GET, POST"})
            return NOT_DONE_YET
        d = defer.Deferred.fromCoroutine(self._answer(request))
        finished = request.notifyFinish()
        finished.addErrback(lambda _: d.cancel())
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _failed(self, reason: Failure, request: SCEPRequest) -> None:
        """A bug, not a client's fault: one log entry, a text 500, never a hang."""
        if reason.check(defer.CancelledError):
            return
        log.failure("answering {path} failed", reason, path=request.path)
        if not request.finished and not request._disconnected:
            request._answer_text(500, "internal error")

    async def _answer(self, request: SCEPRequest) -> None:
        started = self.clock()
        client = request.getClientAddress()
        address = getattr(client, "host", "") or ""
        config: WrapperConfig | None = None
        operation = ""
        try:
            endpoint = endpoint_of(request.uri)
            if endpoint is None or not self.enabled:
                raise HTTPError(404, "no SCEP service here")
            try:
                config = self.configs.get(endpoint)
            except ConfigError as e:
                log.error("{error}", error=str(e))
                raise HTTPError(503, "this endpoint is not configured", {b"retry-after": b"60"}) from None
            if not config.allows(address):
                raise HTTPError(403, "Access to this service was denied by configuration.")
            raw = request.uri.split(b"?", 1)[1] if b"?" in request.uri else b""
            try:
                query = parse_query(raw)
            except QueryError as e:
                raise HTTPError(400, str(e)) from None
            operation = text_value(query.get("operation", b"")).strip()
            content_type, body, summary = await self._operation(request, config, operation, query, address)
        except HTTPError as e:
            self._log(config, operation, address, e.status, e.reason, started)
            request._answer_text(e.status, e.reason, e.headers)
            return
        self._log(config, operation, address, 200, summary, started)
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"content-length", b"%d" % len(body))
        if request.method != b"HEAD":
            request.write(body)
        request.finish()

    async def _operation(self, request: SCEPRequest, config: WrapperConfig, operation: str,
                         query: dict[str, bytes], address: str) -> tuple[bytes, bytes, str]:
        where = {"realm": config.realm, "servername": config.servername}
        if operation.lower() == "getcacaps":
            result = await self._call(commands.GetCACaps, **where)
            body = "".join(line + "\n" for line in result["capabilities"]).encode("ascii")
            return CONTENT_TYPES["GetCACaps"], body, f"{len(result['capabilities'])} capabilities"
        if operation.lower() == "getcacert":
            result = await self._call(commands.GetCACert, **where)
            return result["content_type"].encode("ascii"), result["body"], "CA certificates"
        if operation.lower() == "getnextcacert":
            result = await self._call(commands.GetNextCACert, **where)
            return CONTENT_TYPES["GetNextCACert"], result["body"], "next CA certificates"
        if operation.lower() == "pkioperation":
            if request.method == b"POST":
                message = request.content.read() if request.content is not None else b""
            else:
                if "message" not in query:
                    raise HTTPError(400, "PKIOperation by GET needs a message parameter")
                try:
                    message = decode_message(query["message"])
                except QueryError as e:
                    raise HTTPError(400, str(e)) from None
            if not message:
                raise HTTPError(400, "PKIOperation without a message")
            params = [
                {"name": "url_" + name, "value": text_value(query[name])}
                for name in config.params if name in query
            ]
            if config.trace:
                log.debug("TRACE request from {client}: {message}", client=address, message=message.hex())
            result = await self._call(
                commands.PKIOperation, **where, endpoint=config.endpoint, message=message,
                params=params, client_address=address,
                encryption_algorithm=config.encryption_algorithm,
                hash_algorithm=config.hash_algorithm,
            )
            if config.trace:
                log.debug("TRACE response to {client}: {message}", client=address, message=result["body"].hex())
            summary = result["summary"]
            if config.debug and result["detail"]:
                summary += " " + result["detail"]
            return CONTENT_TYPES["PKIOperation"], result["body"], summary
        if not operation:
            raise HTTPError(400, "the operation parameter is missing")
        raise HTTPError(400, "unknown operation")

    async def _call(self, command: type[amp.Command], **arguments: Any) -> dict[str, Any]:
        try:
            return await self.backend.call(command, **arguments)
        except commands.BadMessage as e:
            raise HTTPError(400, str(e) or "not a SCEP message") from None
        except commands.NotAvailable as e:
            raise HTTPError(404, str(e) or "not available") from None
        except commands.Unavailable as e:
            raise HTTPError(503, str(e) or "try again later", {b"retry-after": b"10"}) from None
        except amp.RemoteAmpError as e:
            log.error("authority failed on {command}: {error}", command=command.__name__, error=str(e))
            raise HTTPError(500, "internal error in the authority") from None

    def _log(self, config: WrapperConfig | None, operation: str, address: str,
             status: int, outcome: str, started: float) -> None:
        log.info(
            "{endpoint} {operation} from {client}: {status} {outcome} ({ms:.1f} ms)",
            endpoint=config.endpoint if config else "-",
            operation=operation[:32] if config is not None and config.debug else
            (operation if operation in ("GetCACaps", "GetCACert", "GetNextCACert", "PKIOperation") else "-"),
            client=address, status=status, outcome=outcome,
            ms=(self.clock() - started) * 1000,
        )


class SCEPSite(Site):
    """
    A Site without the combined access log: a GET PKIOperation carries the
    whole request in its URL, which is user input; L{SCEPResource} logs one
    line per request itself, with content only at DEBUG.
    """

    def log(self, request: Any) -> None:
        pass


def make_site(resource: SCEPResource, reactor: Any = None) -> Site:
    """
    The Site for the front: long headers, capped bodies, no HTML errors, and
    no form parsing of POST bodies (a pkiMessage is never a form; Twisted
    would run every Content-Type through the email package to find out).
    """
    site = SCEPSite(resource, reactor=reactor, timeout=IDLE_TIMEOUT)
    # Site(parsePOSTFormSubmission=False) in newer Twisted (twisted#12412);
    # set directly so that the older Twisted we support, which ignores it, still starts.
    site._parsePOSTFormSubmission = False
    site.protocol = SCEPChannel  # type: ignore[assignment]
    site.requestFactory = SCEPRequest
    site.displayTracebacks = False
    site.noisy = False
    return site
