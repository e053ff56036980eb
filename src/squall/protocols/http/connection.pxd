# Declares `Connection` (connection.py) as a compiled class for Cython, which
# compiles connection.py itself with these declarations (setup.py); see
# stream.pxd.  Only what the request path reads and writes is declared: the
# concrete connections are Python subclasses, so anything else lives in
# their instance dictionary.  The `cpdef` methods are called directly by
# compiled callers, and still looked up on a subclass that overrides them.

from squall.middleware.proxy_headers cimport ProxyHeaders
from squall.protocols.http.stream cimport ASGIStream


cdef class Connection:
    cdef public object config, app, loop, server_state, app_state, root_path, limit_concurrency
    cdef public object access_format, asgi_version, metrics
    cdef public ProxyHeaders proxy_rewriter
    cdef public object transport, read_gate, client, server, scheme, extensions, context
    cdef public dict scope_template
    cdef public object closed_at, write_paused_at, write_buffered, _unsent, _unsent_size
    cdef public object access_log, reset_contextvars, proxy_trusted, closing, write_paused, eager_start

    cpdef start_stream(self, ASGIStream stream, app)
    cpdef stream_finished(self, ASGIStream stream)
    cpdef base_scope(self, method, http_version, path, raw_path, query, headers)
    cpdef write(self, data)
    cpdef write_later(self, data)
    cpdef stream_start_response(self, ASGIStream stream, message)
    cpdef stream_send_body(self, ASGIStream stream, body, more_body)
    cpdef stream_complete(self, ASGIStream stream)
    cpdef stream_body_consumed(self, ASGIStream stream, size)
