"""
scep: a SCEP (RFC 8894) certificate-enrollment server on Twisted.

The parts, as DESIGN.md draws them: L{scep.front} (the untrusted HTTP
side, no keys), L{scep.commands} (the AMP contract), L{scep.authority}
(the keys, the policy, issuance), L{scep.store}, the pure codec
(L{scep.message} and friends) and L{scep.cli} (scepadm).
"""
