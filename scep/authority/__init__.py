"""
The authority: the AMP server that holds the CA and RA keys, applies the
server policy and issues certificates.  Nothing under L{scep.front} imports
it.
"""
