# Declares `H1Reader` (h1_reader.py) as a compiled class for Cython; see
# stream.pxd.  The `--http` implementations subclass it in Python.

cimport cython

from squall.protocols.http.h1_connection cimport H1Connection
from squall.protocols.http.h1_request cimport RequestInfo, RequestLimits


cdef class H1Reader:
    cdef public H1Connection conn
    cdef public RequestLimits limits
    cdef public object state, _buffer, _remaining, _decoder
    cdef public object _keep_alive, _is_head

    @cython.locals(info=RequestInfo, limits=RequestLimits)
    cpdef _on_head(self, head)
