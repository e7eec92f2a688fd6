# The Python WSGI hello of bench/anchors.js, for uWSGI and Gunicorn: the same
# response as bench/fastcgi/tsgi-app.js and node-handler.cjs give.

BODY = b"Hello, world!\n"
HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(BODY))),
]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
