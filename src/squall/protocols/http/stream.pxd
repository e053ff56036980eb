# Declares `ASGIStream` (stream.py) as a compiled class for Cython, which
# compiles stream.py itself with these declarations (setup.py): each
# attribute becomes a slot of the object, read and written without a
# dictionary lookup, and the `cpdef` methods (here and on the connection
# the stream calls) are called directly.  stream.py is the pure-Python
# path, unchanged.

cimport cython

from squall.protocols.http.connection cimport Connection


@cython.final
cdef class ASGIStream:
    cdef public object scope, stream_id, state, status, bytes_sent
    cdef public Connection host
    cdef public object response_headers, started, wire, task, request_trailers
    cdef public object is_head, trailers, trailers_allowed, expect_100, disconnected, blocked
    # request body
    cdef public object _body, buffered, _waiter, _unblocked
    cdef public object more_body, _delivered, waiting

    cpdef _body_sent(self)
    cpdef _complete(self)
