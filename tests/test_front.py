"""
The front without a network: query decoding, wrapper configs, and the HTTP
resource driven through a real L{SCEPChannel} over a C{StringTransport},
with a recording backend in place of the authority.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from scep import commands
from scep.config import ConfigError, load_system
from scep.front.query import QueryError, decode_message, parse_query
from scep.front.resource import MAX_BODY, MAX_HEADERS, SCEPResource, endpoint_of, make_site
from scep.front.wrapper import WrapperConfigs, load_wrapper

MESSAGE = bytes(range(256)) * 3


class QueryTests(SynchronousTestCase):
    def test_plus_kept(self) -> None:
        """A raw C{+} stays a C{+} (form decoding would make it a space)."""
        encoded = base64.b64encode(MESSAGE)
        self.assertIn(b"+", encoded)
        self.assertEqual(decode_message(encoded), MESSAGE)

    def test_space_is_plus(self) -> None:
        """A space (what a form decoder made of C{+}) is read as C{+}."""
        self.assertEqual(decode_message(base64.b64encode(MESSAGE).replace(b"+", b" ")), MESSAGE)

    def test_percent_escapes(self) -> None:
        """Fully percent-escaped base64 decodes."""
        encoded = base64.b64encode(MESSAGE).replace(b"+", b"%2B").replace(b"/", b"%2F").replace(b"=", b"%3D")
        self.assertEqual(decode_message(encoded), MESSAGE)

    def test_line_breaks(self) -> None:
        """CR/LF every 64 characters, raw or as C{%0A}/C{%0D%0A}, are dropped."""
        encoded = base64.b64encode(MESSAGE)
        lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
        self.assertEqual(decode_message(b"%0A".join(lines)), MESSAGE)
        self.assertEqual(decode_message(b"%0D%0A".join(lines)), MESSAGE)
        self.assertEqual(decode_message(b"\r\n".join(lines)), MESSAGE)

    def test_urlsafe_alphabet(self) -> None:
        """base64url (C{-} and C{_}) decodes too."""
        self.assertEqual(decode_message(base64.urlsafe_b64encode(MESSAGE)), MESSAGE)

    def test_padding_optional(self) -> None:
        """Missing padding is supplied."""
        for size in (1, 2, 3, 4, 5):
            data = MESSAGE[:size]
            self.assertEqual(decode_message(base64.b64encode(data).rstrip(b"=")), data)

    def test_not_base64(self) -> None:
        """Garbage is a L{QueryError} with a one-line reason."""
        for bad in (b"", b"%%%", b"a", b"!!!!", b"abcde"):
            with self.assertRaises(QueryError) as e:
                decode_message(bad)
            self.assertNotIn("\n", str(e.exception))

    def test_parse_query(self) -> None:
        """Parameters split by hand, first wins, values stay raw."""
        self.assertEqual(parse_query(b"operation=PKIOperation&message=a+b%2B&operation=x&flag"),
                         {"operation": b"PKIOperation", "message": b"a+b%2B", "flag": b""})


def write(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


class WrapperTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.join(self.mktemp(), "scep")
        write(os.path.join(self.dir, "default.conf"), "[global]\nrealm = democa\nservername = generic\n")

    def test_defaults(self) -> None:
        """A minimal file gets the documented defaults."""
        config = WrapperConfigs(self.dir).get("default")
        self.assertEqual((config.realm, config.servername, str(config.iprange), config.log_level),
                         ("democa", "generic", "0.0.0.0/0", "INFO"))
        self.assertTrue(config.allows("10.1.2.3"))
        self.assertTrue(config.allows("::1"))

    def test_fallback_to_default(self) -> None:
        """An endpoint without a file of its own uses default.conf."""
        self.assertEqual(WrapperConfigs(self.dir).get("nosuch").endpoint, "default")

    def test_servername_defaults_to_endpoint(self) -> None:
        """Without servername, the endpoint name is the servername."""
        path = write(os.path.join(self.dir, "vpn.conf"), "[global]\nrealm = vpnca\n")
        self.assertEqual(load_wrapper(path, "vpn").servername, "vpn")

    def test_keys_in_global_or_sections(self) -> None:
        """log_level and param are read from [logger]/[PKIOperation] or [global]."""
        path = write(os.path.join(self.dir, "a.conf"),
                     "[global]\nrealm = r\nlog_level = debug\nparam = signature, profile, message\n")
        config = load_wrapper(path, "a")
        self.assertEqual((config.log_level, config.params), ("DEBUG", ("signature", "profile")))

    def test_iprange(self) -> None:
        """iprange admits its network only; IPv4-mapped IPv6 addresses count as IPv4."""
        path = write(os.path.join(self.dir, "a.conf"), "[global]\nrealm = r\niprange = 192.168.1.0/24\n")
        config = load_wrapper(path, "a")
        self.assertTrue(config.allows("192.168.1.77"))
        self.assertTrue(config.allows("::ffff:192.168.1.77"))
        self.assertFalse(config.allows("192.168.2.1"))
        self.assertFalse(config.allows("::1"))

    def test_errors_name_file_and_key(self) -> None:
        """A wrong value is a ConfigError naming the file and the key."""
        for text, key in (("[global]\n", "global.realm"),
                          ("[global]\nrealm = r\nencryption_algorithm = rot13\n", "global.encryption_algorithm"),
                          ("[global]\nrealm = r\niprange = 10.0.0.0/33\n", "global.iprange"),
                          ("[global]\nrealm = r\n[logger]\nlog_level = LOUD\n", "logger.log_level")):
            path = write(os.path.join(self.dir, "bad.conf"), text)
            with self.assertRaises(ConfigError) as e:
                load_wrapper(path, "bad")
            self.assertEqual(e.exception.key, key)
            self.assertIn(path, str(e.exception))

    def test_reload_on_mtime(self) -> None:
        """A changed file is read again; a broken change keeps the last good one."""
        configs = WrapperConfigs(self.dir)
        path = os.path.join(self.dir, "default.conf")
        self.assertEqual(configs.get("default").realm, "democa")
        write(path, "[global]\nrealm = other\n")
        os.utime(path, (1, 1))
        self.assertEqual(configs.get("default").realm, "other")
        write(path, "[global]\n")
        os.utime(path, (2, 2))
        self.assertEqual(configs.get("default").realm, "other")
        self.flushLoggedErrors()

    def test_encryption_names(self) -> None:
        """The reference's cipher names map to the codec's."""
        for name, codec in (("des3", "3des"), ("cast", "cast5"), ("aes256", "aes256"), ("blowfish", "blowfish")):
            path = write(os.path.join(self.dir, "e.conf"), f"[global]\nrealm = r\nencryption_algorithm = {name}\n")
            self.assertEqual(load_wrapper(path, "e").encryption_algorithm, codec)


class SystemConfigTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """No system.yaml: enabled, default database, no worker count."""
        system = load_system(self.mktemp())
        self.assertEqual((system.enabled, system.database, system.workers), (True, None, None))

    def test_disabled(self) -> None:
        """The service switch is read."""
        d = self.mktemp()
        write(os.path.join(d, "system.yaml"), "system:\n  server:\n    service:\n      scep:\n        enabled: false\n")
        self.assertFalse(load_system(d).enabled)

    def test_bad_value(self) -> None:
        """A non-boolean switch names the key."""
        d = self.mktemp()
        write(os.path.join(d, "system.yaml"), "system:\n  server:\n    service:\n      scep:\n        enabled: maybe\n")
        with self.assertRaises(ConfigError) as e:
            load_system(d)
        self.assertEqual(e.exception.key, "system.server.service.scep.enabled")


class RecordingBackend:
    """Answers like an authority would, and records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.error: Exception | None = None

    async def call(self, command: Any, **arguments: Any) -> dict[str, Any]:
        self.calls.append((command.__name__, arguments))
        if self.error is not None:
            raise self.error
        if command is commands.GetCACaps:
            return {"capabilities": ["AES", "SHA-256"]}
        if command is commands.GetCACert:
            return {"content_type": "application/x-x509-ca-ra-cert", "body": b"CERTS"}
        if command is commands.GetNextCACert:
            raise commands.NotAvailable("NextCA not set")
        return {"body": b"CERTREP:" + arguments["message"], "summary": "PKCSReq SUCCESS", "detail": ""}


class ResourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.join(self.mktemp(), "scep")
        write(os.path.join(self.dir, "default.conf"), "[global]\nrealm = democa\nservername = generic\nparam = signature\n")
        write(os.path.join(self.dir, "lab.conf"), "[global]\nrealm = lab\niprange = 10.0.0.0/8\n")
        self.backend = RecordingBackend()
        self.enabled = True

    def exchange(self, raw: bytes, peer: Any = None) -> bytes:
        self.connect(peer).dataReceived(raw)
        return self.transport.value()

    def connect(self, peer: Any = None) -> Any:
        self.reactor = MemoryReactorClock()
        site = make_site(SCEPResource(WrapperConfigs(self.dir), self.backend, enabled=self.enabled),
                         reactor=self.reactor)
        peer = peer or IPv4Address("TCP", "127.0.0.1", 40000)
        channel = site.buildProtocol(peer)
        self.transport = StringTransport(peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        channel.makeConnection(self.transport)
        return channel

    def get(self, target: bytes, version: bytes = b"HTTP/1.1", peer: Any = None) -> bytes:
        host = b"" if version == b"HTTP/1.0" else b"Host: ca\r\n"
        return self.exchange(b"GET " + target + b" " + version + b"\r\n" + host + b"\r\n", peer)

    def test_getcacaps(self) -> None:
        """GetCACaps is text/plain, one keyword per line."""
        response = self.get(b"/scep?operation=GetCACaps")
        self.assertIn(b"200 OK", response)
        self.assertIn(b"Content-Type: text/plain", response)
        self.assertTrue(response.endswith(b"\r\n\r\nAES\nSHA-256\n"))
        self.assertEqual(self.backend.calls, [("GetCACaps", {"realm": "democa", "servername": "generic"})])

    def test_paths(self) -> None:
        """Every SCEP path reaches its endpoint; others are 404 text."""
        for path, endpoint in ((b"/scep", "default"), (b"/scep/default", "default"),
                               (b"/scep/lab/pkiclient.exe", "lab"), (b"/cgi-bin/pkiclient.exe", "default"),
                               (b"/scep/nosuch/x/y", "nosuch")):
            self.assertEqual(endpoint_of(path), endpoint)
            response = self.get(path + b"?operation=GetCACert", peer=IPv4Address("TCP", "10.1.1.1", 1))
            self.assertIn(b"200 OK", response, path)
            self.assertIn(b"application/x-x509-ca-ra-cert", response)
        response = self.get(b"/index.html?operation=GetCACert")
        self.assertIn(b"404", response)
        self.assertIn(b"text/plain", response)

    def test_http10_without_host(self) -> None:
        """An HTTP/1.0 request without Host is answered, with a Content-Length."""
        response = self.get(b"/cgi-bin/pkiclient.exe?operation=GetCACaps", version=b"HTTP/1.0")
        self.assertIn(b"200 OK", response)
        self.assertIn(b"Content-Length: 12", response)

    def test_post(self) -> None:
        """A POST body of any Content-Type is handed to the authority as is."""
        body = b"\x30\x80" + MESSAGE
        response = self.exchange(b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: ca\r\n"
                                 b"Content-Type: application/octet-stream\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.assertIn(b"application/x-pki-message", response)
        self.assertTrue(response.endswith(b"CERTREP:" + body))

    def test_get_pkioperation(self) -> None:
        """A GET message is decoded; only whitelisted params pass, as url_*."""
        message = base64.b64encode(MESSAGE).replace(b"/", b"%2F")
        response = self.get(b"/scep?operation=PKIOperation&message=" + message + b"&signature=abc&evil=1")
        self.assertTrue(response.endswith(b"CERTREP:" + MESSAGE))
        name, arguments = self.backend.calls[0]
        self.assertEqual(arguments["params"], [{"name": "url_signature", "value": "abc"}])
        self.assertEqual(arguments["client_address"], "127.0.0.1")

    def test_long_get(self) -> None:
        """A GET of 64 KiB of request line works; a longer one is a text 4xx."""
        prefix = b"/scep?operation=PKIOperation&message="
        room = MAX_HEADERS - len(b"GET  HTTP/1.1") - len(prefix) - len(b"Host: ca")
        data = os.urandom(room // 4 * 3)
        ok = self.get(prefix + base64.b64encode(data))
        self.assertIn(b"200 OK", ok)
        self.assertTrue(ok.endswith(b"CERTREP:" + data))
        too_long = self.get(prefix + base64.b64encode(os.urandom(MAX_HEADERS)))
        self.assertRegex(too_long, rb"^HTTP/1.1 4\d\d ")
        self.assertIn(b"text/plain", too_long)

    def test_body_cap(self) -> None:
        """A POST body over 1 MiB is refused with 413 before it is read."""
        response = self.exchange(b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: ca\r\n"
                                 b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1))
        self.assertIn(b"413", response)
        self.assertIn(b"text/plain", response)
        self.assertEqual(self.backend.calls, [])

    def test_chunked_body_cap(self) -> None:
        """A chunked POST body that grows over 1 MiB is refused too."""
        chunk = b"x" * 65536
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17))
        response = self.exchange(b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: ca\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n")
        self.assertIn(b"413", response)
        self.assertEqual(self.backend.calls, [])

    def test_bad_requests(self) -> None:
        """Unknown operation, bad base64, missing message: one-line text 400s."""
        for target in (b"/scep?operation=Explode", b"/scep", b"/scep?operation=PKIOperation",
                       b"/scep?operation=PKIOperation&message=%%%"):
            response = self.get(target)
            self.assertIn(b"400 Bad Request", response, target)
            self.assertIn(b"text/plain", response)
            self.assertEqual(response.split(b"\r\n\r\n", 1)[1].count(b"\n"), 1)
        self.assertEqual(self.backend.calls, [])

    def test_iprange(self) -> None:
        """A client outside iprange gets 403 with the reference's words."""
        response = self.get(b"/scep/lab?operation=GetCACaps", peer=IPv4Address("TCP", "192.0.2.1", 1))
        self.assertIn(b"403", response)
        self.assertIn(b"Access to this service was denied by configuration.", response)
        response = self.get(b"/scep/lab?operation=GetCACaps", peer=IPv6Address("TCP", "::1", 1))
        self.assertIn(b"403", response)
        self.assertEqual(self.backend.calls, [])

    def test_disabled(self) -> None:
        """With the service switched off every SCEP URL is 404."""
        self.enabled = False
        response = self.get(b"/scep?operation=GetCACaps")
        self.assertIn(b"404", response)
        self.assertEqual(self.backend.calls, [])

    def test_authority_errors(self) -> None:
        """Declared AMP errors become 400/404/503 text answers."""
        for error, status in ((commands.BadMessage("not a pkiMessage"), b"400"),
                              (commands.Unavailable("busy"), b"503")):
            self.backend.error = error
            response = self.exchange(b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: ca\r\n"
                                     b"Content-Length: 3\r\n\r\nabc")
            self.assertIn(b" " + status + b" ", response)
            self.assertIn(b"text/plain", response)
        self.backend.error = None
        response = self.get(b"/scep?operation=GetNextCACert")
        self.assertIn(b"404", response)
        self.assertIn(b"NextCA not set", response)

    def test_idle_connection_closed(self) -> None:
        """A client that sends half a request and waits is cut off after a minute."""
        self.connect().dataReceived(b"GET /scep?operation=GetCACaps HTTP/1.1\r\n")
        self.reactor.advance(59)
        self.assertFalse(self.transport.disconnecting)
        self.reactor.advance(2)
        self.assertTrue(self.transport.disconnecting or self.transport.disconnected)

    def test_bug_is_a_text_500(self) -> None:
        """An unexpected error in the front answers 500 text/plain at once, without a traceback."""
        self.backend.error = KeyError("a bug")
        response = self.get(b"/scep?operation=GetCACaps")
        self.assertIn(b"500", response.split(b"\r\n")[0])
        self.assertTrue(response.endswith(b"\r\n\r\ninternal error\n"))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_method(self) -> None:
        """Other methods get 405."""
        response = self.exchange(b"DELETE /scep HTTP/1.1\r\nHost: ca\r\n\r\n")
        self.assertIn(b"405", response)
