"""HTTP: the WSGI app, its routes, parameters, error responses and request observation."""
