# Declares `H1Reader` (h1_reader.py) as a compiled class for Cython; see
# stream.pxd.  The `--http` implementations subclass it in Python.

cdef class H1Reader:
    cdef public object conn, limits, state, _buffer, _remaining, _decoder
    cdef public bint _keep_alive, _is_head
