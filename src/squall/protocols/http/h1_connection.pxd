# Declares `H1Connection` (h1_connection.py) as a compiled class for Cython;
# see stream.pxd and connection.pxd.

cimport cython

from squall.protocols.http.connection cimport Connection
from squall.protocols.http.h1_request cimport RequestInfo, RequestLimits
from squall.protocols.http.stream cimport ASGIStream


cdef class H1Connection(Connection):
    cdef public RequestLimits limits
    cdef public object ws_protocol_class, h2_protocol_class, reader
    cdef public object state, since, last_read, requests_served, active, pipeline, _starting, parsing
    cdef public object pending_error, pending_switch, _preface, _linger_budget, _pending_head
    cdef public object _framing, _remaining, _trailers, _direct_fd, _switch_kind, _switch_head
    cdef public object _keep_alive, _native_sendfile, _writelines

    cpdef may_parse(self)
    @cython.locals(info=RequestInfo, stream=ASGIStream)
    cpdef on_head(self, method, target, http_version, headers, plain=*)
    cpdef _activate(self, ASGIStream stream)
    cpdef _become_idle(self)
    cpdef stream_start_response(self, ASGIStream stream, message)
    cpdef stream_send_body(self, ASGIStream stream, body, more_body)
    cpdef stream_complete(self, ASGIStream stream)
    cpdef stream_body_consumed(self, ASGIStream stream, size)
