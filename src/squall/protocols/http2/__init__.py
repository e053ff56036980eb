"""HTTP/2 (RFC 9113): the wire layer (`wire.py`, over the h2 library in
`h2_wire.py`) and the connection that serves its streams as ASGI requests
(`connection.py`)."""
