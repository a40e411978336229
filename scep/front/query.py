"""
The query string of a SCEP request, read the way real clients write it.

Clients disagree about how to put a base64 pkiMessage into a URL: Cisco
leaves C{%0A} every 64 characters, macOS leaves C{+} and C{/} unescaped,
micromdm's client once used base64url, and form decoding (which turns C{+}
into a space) has broken more than one server.  So the raw query string is
split here by hand and the C{message} value decoded leniently.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from urllib.parse import unquote_to_bytes


class QueryError(ValueError):
    """The query string cannot be read; C{str()} is a one-line reason."""


def parse_query(raw: bytes) -> dict[str, bytes]:
    """
    Split a raw query string into its parameters, first occurrence wins.

    Names are percent-decoded and must be ASCII; values stay raw (still
    percent-encoded) because how to decode them depends on the parameter.
    """
    params: dict[str, bytes] = {}
    for pair in raw.split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        try:
            key = unquote_to_bytes(name).decode("ascii")
        except UnicodeDecodeError:
            raise QueryError("a query parameter name is not ASCII") from None
        params.setdefault(key, value)
    return params


def text_value(raw: bytes) -> str:
    """A parameter value as text: percent-decoded, C{+} as a space (forms)."""
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")


def decode_message(raw: bytes) -> bytes:
    """
    Decode the C{message} parameter of a GET PKIOperation to DER bytes.

    Percent-escapes are undone, but a C{+} stays a C{+} (and a space, which
    is what form-decoding made of a C{+}, becomes one again); CR, LF and
    other whitespace go; both the standard and the URL-safe alphabet are
    accepted, with or without padding.
    """
    text = unquote_to_bytes(raw).replace(b" ", b"+")
    text = b"".join(text.split())
    text = text.replace(b"-", b"+").replace(b"_", b"/").rstrip(b"=")
    if not text:
        raise QueryError("the message parameter is empty")
    if len(text) % 4 == 1:
        raise QueryError("the message parameter is not base64 (bad length)")
    text += b"=" * (-len(text) % 4)
    try:
        return b64decode(text, validate=True)
    except binascii.Error:
        raise QueryError("the message parameter is not base64") from None
