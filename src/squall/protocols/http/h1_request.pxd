# Declares the request-head records of h1_request.py as compiled classes for
# Cython, which compiles h1_request.py itself with them (setup.py): the
# reader and the connection read their fields for every request.  See
# stream.pxd.

cdef class RequestLimits:
    cdef public object head_size, request_line, fields, field_size, body, line_size, request_line_size


cdef class RequestInfo:
    cdef public object keep_alive, has_body, chunked, content_length, expect_100, switch, te_trailers, h2_settings


cdef class RequestHead:
    cdef public object method, target, http_version, headers
