# Declares `ASGIStream` (stream.py) as a compiled class for Cython, which
# compiles stream.py itself with these declarations (setup.py): each
# attribute becomes a slot of the object, read and written without a
# dictionary lookup.  stream.py is the pure-Python path, unchanged.

cdef class ASGIStream:
    cdef public object scope, host, stream_id, state, status, bytes_sent
    cdef public object response_headers, started, wire, task, request_trailers
    cdef public bint is_head, trailers, trailers_allowed, expect_100, disconnected, blocked
    # request body
    cdef public object _body, buffered, _waiter, _unblocked
    cdef public bint more_body, _delivered, waiting
