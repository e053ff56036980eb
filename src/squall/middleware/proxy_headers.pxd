# Declares `ProxyHeaders` (proxy_headers.py) as a compiled class for Cython,
# which compiles proxy_headers.py itself with it (setup.py): every request
# from a trusted proxy goes through `apply`.  See protocols/http/stream.pxd.

cdef class ProxyHeaders:
    cdef public object trusted_hosts

    cpdef apply(self, scope)
