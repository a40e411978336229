"""
The trust boundary: nothing under C{scep/front/} may import the authority or
load a private key, so a compromised front cannot issue a certificate.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from twisted.trial.unittest import TestCase

from tests.server import TOP, environment

FRONT = os.path.join(TOP, "scep", "front")

KEY_LOADERS = {
    "load_pem_private_key", "load_der_private_key", "load_ssh_private_key", "load_key_and_certificates",
    "load_pkcs12", "load_privatekey", "PrivateKey", "KeyStore",
}


def front_modules() -> list[str]:
    return sorted(os.path.join(FRONT, name) for name in os.listdir(FRONT) if name.endswith(".py"))


class BoundaryTests(TestCase):
    def test_no_authority_import(self) -> None:
        """No module of the front imports C{scep.authority} in any form."""
        for path in front_modules():
            tree = ast.parse(open(path, encoding="utf-8").read(), path)
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                for name in names:
                    self.assertFalse(name.startswith("scep.authority"), f"{path}:{node.lineno} imports {name}")
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
                    self.fail(f"{path}:{node.lineno} imports dynamically")

    def test_no_key_loading(self) -> None:
        """No module of the front names a private-key loader."""
        for path in front_modules():
            tree = ast.parse(open(path, encoding="utf-8").read(), path)
            for node in ast.walk(tree):
                name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
                self.assertNotIn(name, KEY_LOADERS, f"{path}:{getattr(node, 'lineno', '?')} uses {name}")

    def test_running_front_holds_no_authority(self) -> None:
        """Importing the front's plugin and service pulls in no authority module."""
        code = ("import sys, scep.front.tap, scep.front.resource, scep.front.backend\n"
                "print(sorted(m for m in sys.modules if m.startswith('scep.authority')))")
        result = subprocess.run([sys.executable, "-c", code], env=environment(), capture_output=True,
                                text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), "[]")
