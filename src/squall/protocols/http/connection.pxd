# Declares `Connection` (connection.py) as a compiled class for Cython; see
# stream.pxd.  Only what the request path reads and writes is declared: the
# concrete connections are Python subclasses, so anything else lives in
# their instance dictionary.

cdef class Connection:
    cdef public object config, app, loop, server_state, app_state, root_path, limit_concurrency
    cdef public object access_format, asgi_version, proxy_rewriter, metrics
    cdef public object transport, read_gate, client, server, scheme, extensions, context
    cdef public object closed_at, write_paused_at, write_buffered, _unsent, _unsent_size
    cdef public bint access_log, reset_contextvars, proxy_trusted, closing, write_paused, eager_start
