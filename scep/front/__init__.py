"""
The front: the untrusted HTTP side.  It holds no key and decrypts nothing;
it reads wrapper configs and hands SCEP bytes to an authority over AMP.
"""
