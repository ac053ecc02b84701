"""moto's S3 server with write-through persistence: what a request wrote survives a kill.

moto keeps every bucket in memory. This package runs the same moto server behind a WSGI
middleware that, after each successful S3 request that changes an object or a bucket and before
the client sees the answer, writes that object (or its deletion) to a data directory; on start,
the data directory is loaded back into moto before the port opens. See ``server.py``.
"""
