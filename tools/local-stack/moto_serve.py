"""moto_server, with DynamoDB requests applied one at a time.

DynamoDB applies each conditional write atomically: of two writers that
read version 7 and both write "if version = 7", exactly one succeeds.
moto_server serves requests on threads and checks a condition and writes
the item in separate steps, so two concurrent writers can both succeed
(seen here with moto 5.2.5). The pipeline's correctness rests on that
atomicity (leases, versioned updates, idempotency keys), so the local stack
must have it too: this runs moto's own WSGI app exactly as `moto_server`
does, but holds one lock around every DynamoDB request. S3 and the other
services stay concurrent.

Usage: python moto_serve.py -H 127.0.0.1 -p PORT
"""

import argparse
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

_dynamodb = threading.Lock()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()

    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return moto_app(environ, start_response)
        with _dynamodb:
            # Produce the whole response inside the lock: the write happens
            # while the body is generated.
            result = moto_app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()
        return [body]

    run_simple(
        args.host,
        args.port,
        app,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
