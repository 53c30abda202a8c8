"""localstripe, a fake Stripe API, for one test: `--port N` (0 picks a free port).

Differences from `localstripe --port N`:

* binds 127.0.0.1 only (localstripe itself listens on every interface);
* starts empty and never touches /tmp/localstripe.pickle (localstripe saves its whole
  store there after every write and can load it back): tests run several instances in
  parallel, each with its own in-memory state;
* a middleware in front of localstripe, for tests:
  - every request (except /_test/*) is recorded as {"method", "path", "query",
    "idempotency_key"} (localstripe itself ignores Idempotency-Key); GET /_test/requests
    returns the list, oldest first;
  - POST /_test/fail-next with {"method": "POST", "path_prefix": "/v1/refunds",
    "status": 500, "count": 1} makes the next `count` matching requests answer `status`
    with {"error": {"type": "api_error", "message": "injected"}} without reaching
    localstripe (they are still recorded).

Prints `ready 127.0.0.1:<port>` on stdout once it accepts connections.
"""

import argparse
import asyncio
import json
import logging
import sys

from aiohttp import web

# localstripe pickles its store to a fixed path after every change and can reload it:
# turn both off before anything creates an object.
from localstripe.resources import Store

Store.dump_to_disk = lambda self: None
Store.try_load_from_disk = lambda self: None

from localstripe.server import app  # noqa: E402  (after the patch, on purpose)

recorded = []
failures = []  # rules: {"method", "path_prefix", "status", "count"}


def injected_failure(request):
    for rule in failures:
        if (
            rule["count"] > 0
            and request.method == rule["method"]
            and request.path.startswith(rule["path_prefix"])
        ):
            rule["count"] -= 1
            if rule["count"] == 0:
                failures.remove(rule)
            return web.json_response(
                {"error": {"type": "api_error", "message": "injected"}},
                status=rule["status"],
            )
    return None


async def fail_next(request):
    try:
        rule = await request.json()
        rule = {
            "method": str(rule.get("method", "POST")).upper(),
            "path_prefix": str(rule["path_prefix"]),
            "status": int(rule.get("status", 500)),
            "count": int(rule.get("count", 1)),
        }
    except (ValueError, KeyError, TypeError) as e:
        return web.json_response({"error": f"bad rule: {e!r}"}, status=400)
    failures.append(rule)
    return web.json_response(rule)


@web.middleware
async def test_middleware(request, handler):
    if request.path == "/_test/requests" and request.method == "GET":
        return web.json_response(recorded)
    if request.path == "/_test/fail-next" and request.method == "POST":
        return await fail_next(request)
    recorded.append(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "idempotency_key": request.headers.get("Idempotency-Key"),
        }
    )
    return injected_failure(request) or await handler(request)


# Outermost, so that it sees every request before localstripe's auth and error handling.
app.middlewares.insert(0, test_middleware)


async def serve(port):
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]
    print(f"ready 127.0.0.1:{bound}", flush=True)
    await asyncio.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
