"""
DER and BER for the CMS codec: writing TLVs, re-encoding BER as DER, and
reading values without building objects.

Writing is by hand (L{der_tlv} and friends): a SignedData or EnvelopedData
is a few nested TLVs, far cheaper to join than to build with asn1crypto.
Reading walks the values of a structure (L{values}, L{expect}, L{octets}),
each value staying the bytes it was received as, because asn1crypto builds
a Python object for every value it reads, which costs more than the
private-key operation of a request.  L{ber_to_der} re-encodes what clients
sent in BER, to check a signature over the DER they may have meant.

L{CMSError}, the root of the CMS errors, lives here because this is the
lowest layer that raises it; L{scep.algorithms} and L{scep.cms} raise its
subclasses.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from asn1crypto import core as asn1_core
from asn1crypto import parser as asn1_parser


class CMSError(ValueError):
    """A CMS structure cannot be read, verified or decrypted."""


# -- writing -----------------------------------------------------------------------------


def der_tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV with a single-byte tag."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def ber_indefinite(tag: int, *parts: bytes) -> bytes:
    """A constructed BER TLV with indefinite length (ends with end-of-contents)."""
    return bytes((tag | 0x20, 0x80)) + b"".join(parts) + b"\x00\x00"


def ber_octet_string(data: bytes, chunk_size: int = 1000, tag: int = 0x24) -> bytes:
    """A constructed, indefinite-length OCTET STRING of several primitive chunks."""
    chunks = [der_tlv(0x04, data[i : i + chunk_size]) for i in range(0, len(data), chunk_size)]
    return ber_indefinite(tag, *chunks)


@functools.lru_cache(maxsize=128)
def der_oid(dotted: str) -> bytes:
    """The DER of an OBJECT IDENTIFIER."""
    return asn1_core.ObjectIdentifier(dotted).dump()


def algorithm_identifier(dotted: str) -> bytes:
    """AlgorithmIdentifier DER with NULL parameters (the conventional form)."""
    return der_tlv(0x30, der_oid(dotted) + _NULL)


_NULL = b"\x05\x00"
_STRING_TAGS = frozenset((4, 12, 18, 19, 20, 22, 26, 28, 30))


# -- BER to DER ----------------------------------------------------------------------------


def ber_to_der(data: bytes) -> bytes:
    """Re-encode BER as DER: definite lengths, merged universal strings, sorted SETs."""
    try:
        out, end = _ber_to_der(data, 0, 0)
    except IndexError:
        raise CMSError("truncated BER") from None
    if end != len(data):
        raise CMSError("trailing data after BER value")
    return out


def _ber_to_der(data: bytes, pos: int, depth: int) -> tuple[bytes, int]:
    if depth > 64:
        raise CMSError("BER nesting too deep")
    start = pos
    first = data[pos]
    pos += 1
    if first & 0x1F == 0x1F:
        while data[pos] & 0x80:
            pos += 1
        pos += 1
    tag = data[start:pos]
    length_byte = data[pos]
    pos += 1
    if length_byte == 0x80:
        if not first & 0x20:
            raise CMSError("indefinite length on a primitive value")
        end = None
    elif length_byte & 0x80:
        count = length_byte & 0x7F
        end = pos + count + int.from_bytes(data[pos : pos + count], "big")
        pos += count
        if end > len(data):
            raise CMSError("BER length beyond the data")
    else:
        end = pos + length_byte
        if end > len(data):
            raise CMSError("BER length beyond the data")
    if not first & 0x20:
        assert end is not None  # primitive values have a definite length (checked above)
        return tag + der_tlv(0, data[pos:end])[1:], end
    children = []
    while (end is None and data[pos : pos + 2] != b"\x00\x00") or (end is not None and pos < end):
        child, pos = _ber_to_der(data, pos, depth + 1)
        children.append(child)
    if end is None:
        end = pos + 2
    if len(tag) == 1 and first & 0x1F in _STRING_TAGS and first & 0xC0 == 0:
        merged = b"".join(_primitive_contents(c) for c in children)
        return der_tlv(first & 0xDF, merged), end
    if first == 0x31:
        children.sort()
    return tag + der_tlv(0, b"".join(children))[1:], end


def _primitive_contents(der: bytes) -> bytes:
    length_byte = der[1]
    if length_byte & 0x80:
        return der[2 + (length_byte & 0x7F) :]
    return der[2:]


# -- reading without building objects ------------------------------------------------------


class TLV(NamedTuple):
    """One BER value as received: its class, method, tag, contents and whole encoding."""

    class_: int
    constructed: int
    tag: int
    contents: bytes
    encoded: bytes


def values(data: bytes, limit: int = -1) -> list[TLV]:
    """
    The values one after another in C{data}, up to its end or an
    end-of-contents; only the first C{limit} when that is not negative.
    """
    found: list[TLV] = []
    pos, size = 0, len(data)
    while pos < size and limit != len(found):
        first = data[pos]
        length = data[pos + 1] if pos + 1 < size else 0x80
        if first == 0 and length == 0:
            break  # end-of-contents
        if first & 0x1F == 0x1F or length == 0x80 or length > 0x84:
            # A high tag number, an indefinite length (or a truncated header):
            # asn1crypto's parse(), without the copy of the rest of the data.
            (class_, constructed, tag, _, contents, _), end = asn1_parser._parse(data, size, pos)
            found.append(TLV(class_, constructed, tag, contents, data[pos:end]))
        else:  # the common case, read here: a low tag number and a definite length
            start = pos + 2
            if length & 0x80:
                start += length & 0x7F
                length = int.from_bytes(data[pos + 2 : start], "big")
            end = start + length
            if end > size:
                raise CMSError("truncated value")
            found.append(TLV(first >> 6, (first >> 5) & 1, first & 0x1F, data[start:end], data[pos:end]))
        pos = end
    return found


def expect(value: TLV, tag: int, what: str, class_: int = 0) -> TLV:
    """C{value} if it has this tag (universal unless C{class_} says), else L{CMSError}."""
    if value.class_ != class_ or value.tag != tag:
        raise CMSError(f"malformed {what}")
    return value


def octets(value: TLV) -> bytes:
    """The octets of an OCTET STRING, primitive or BER constructed of chunks."""
    return _chunks(value.contents, 0) if value.constructed else value.contents


def _chunks(data: bytes, depth: int) -> bytes:
    if depth > 16:
        raise CMSError("constructed OCTET STRING nested too deep")
    return b"".join(_chunks(v.contents, depth + 1) if v.constructed else v.contents for v in values(data))


@functools.lru_cache(maxsize=256)
def dotted(encoded: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's encoding."""
    return str(asn1_core.ObjectIdentifier.load(encoded).dotted)


def algorithm_oid(value: TLV, what: str) -> str:
    """The dotted algorithm OID of an AlgorithmIdentifier."""
    return dotted(expect(values(expect(value, 16, what).contents)[0], 6, what).encoded)


def integer(value: TLV) -> int:
    """The value of an INTEGER."""
    return int.from_bytes(value.contents, "big", signed=True)
