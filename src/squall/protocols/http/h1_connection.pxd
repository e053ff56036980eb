# Declares `H1Connection` (h1_connection.py) as a compiled class for Cython;
# see stream.pxd and connection.pxd.

from squall.protocols.http.connection cimport Connection


cdef class H1Connection(Connection):
    cdef public object limits, ws_protocol_class, h2_protocol_class, reader
    cdef public object state, since, last_read, requests_served, active, pipeline, _starting, parsing
    cdef public object pending_error, pending_switch, _preface, _linger_budget, _pending_head
    cdef public object _framing, _remaining, _trailers, _direct_fd, _switch_kind, _switch_head
    cdef public bint _keep_alive, _native_sendfile, _writelines
