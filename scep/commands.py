"""
The AMP contract between the front and the authority.

This is the only module both sides import.  The front sends the commands
here; the authority answers them.  AMP caps a single value at 65,535 bytes,
so DER payloads travel as L{Blob}, which splits them over numbered keys.
Errors a client can cause cross as declared AMP errors, never as tracebacks.
"""

from __future__ import annotations

from typing import Any

from twisted.protocols import amp

CHUNK = 60000
"""Bytes per AMP value of a L{Blob}; below AMP's 65,535-byte cap."""

MAX_CHUNKS = 64
"""A L{Blob} of more chunks than this is refused: 3.8 MB is no SCEP message."""


class Blob(amp.Argument):
    """
    Bytes of any length, carried in the keys C{name}, C{name.1}, C{name.2}...

    The first chunk keeps the plain name so that a short value looks like an
    ordinary L{amp.Bytes} on the wire.
    """

    def toBox(
        self, name: bytes, strings: dict[bytes, bytes], objects: dict[str, Any], proto: Any
    ) -> None:
        value: bytes = objects[str(name, "ascii")]
        chunks = [value[i : i + CHUNK] for i in range(0, len(value), CHUNK)] or [b""]
        if len(chunks) > MAX_CHUNKS:
            raise ValueError(f"{name!r}: {len(value)} bytes is more than a Blob carries")
        strings[name] = chunks[0]
        for index, chunk in enumerate(chunks[1:], 1):
            strings[name + b"." + str(index).encode("ascii")] = chunk

    def fromBox(
        self, name: bytes, strings: dict[bytes, bytes], objects: dict[str, Any], proto: Any
    ) -> None:
        parts = [strings.pop(name)]
        for index in range(1, MAX_CHUNKS):
            key = name + b"." + str(index).encode("ascii")
            if key not in strings:
                break
            parts.append(strings.pop(key))
        objects[str(name, "ascii")] = b"".join(parts)


class BadMessage(Exception):
    """
    The request is not a SCEP message we can answer with a CertRep.

    The front answers it with HTTP 400 and the text as a one-line reason.
    """


class NotAvailable(Exception):
    """
    The thing asked for does not exist here (no next CA, an unknown realm).

    The front answers it with HTTP 404 and the text.
    """


class Unavailable(Exception):
    """
    The authority cannot answer now (database locked, token not loaded).

    The front answers it with HTTP 503 and Retry-After.
    """


_ERRORS: dict[type[Exception], bytes] = {
    BadMessage: b"BAD_MESSAGE",
    NotAvailable: b"NOT_AVAILABLE",
    Unavailable: b"UNAVAILABLE",
}


class Endpoint(amp.Command):
    """Base of the commands that name an endpoint: realm and servername."""

    arguments = [
        (b"realm", amp.Unicode()),
        (b"servername", amp.Unicode()),
    ]
    errors = _ERRORS


class GetCACaps(Endpoint):
    """The capability keywords of the endpoint, one per line."""

    response = [(b"capabilities", amp.ListOf(amp.Unicode()))]


class GetCACert(Endpoint):
    """The RA and CA certificates, as the HTTP body and its Content-Type."""

    response = [(b"content_type", amp.Unicode()), (b"body", Blob())]


class GetNextCACert(Endpoint):
    """The signed next-CA structure, or L{NotAvailable} without a rollover."""

    response = [(b"body", Blob())]


class PKIOperation(amp.Command):
    """
    One pkiMessage from a client; the answer is the CertRep to send back.

    C{params} are the URL parameters the wrapper config lets through, already
    prefixed C{url_}; C{encryption_algorithm} and C{hash_algorithm} are the
    endpoint's reply algorithms, empty to mirror the request.  The answer's
    C{summary} holds no user input (it may be logged at INFO); C{detail}
    does (transactionID, subject) and is logged only at DEBUG.
    """

    arguments = Endpoint.arguments + [
        (b"endpoint", amp.Unicode()),
        (b"message", Blob()),
        (b"params", amp.AmpList([(b"name", amp.Unicode()), (b"value", amp.Unicode())])),
        (b"client_address", amp.Unicode()),
        (b"encryption_algorithm", amp.Unicode()),
        (b"hash_algorithm", amp.Unicode()),
    ]
    response = [(b"body", Blob()), (b"summary", amp.Unicode()), (b"detail", amp.Unicode())]
    errors = _ERRORS


class Ping(amp.Command):
    """Is the worker alive and are its tokens loaded?  Answers its pid."""

    response = [(b"pid", amp.Integer())]
    errors = _ERRORS
