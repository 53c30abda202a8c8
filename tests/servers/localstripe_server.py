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
    localstripe (they are still recorded). With "after": true the request does reach
    localstripe (the effect is made, and its answer kept for its idempotency key) and
    only the answer is lost on the way back: a timeout or reset as a client sees it.
* idempotency as Stripe keeps it (localstripe ignores the header): a POST or DELETE with
  an `Idempotency-Key` that localstripe already answered gets that first answer again
  (status and body, with `Idempotent-Replayed: true`), without reaching localstripe; the
  same key with other parameters is a 400 `idempotency_error`, and while the first
  request is still in flight a 409. Answers that never came from localstripe (injected
  failures before it) are not kept, so a retry after them goes through.

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
failures = []  # rules: {"method", "path_prefix", "status", "count", "after"}
# Idempotency-Key -> {"method", "path", "body", "status", "answer", "content_type"}
# (answer None while the first request is in flight).
idempotent = {}


def matching_failure(request):
    """The failure rule this request triggers (counted as used), if any."""
    for rule in failures:
        if (
            rule["count"] > 0
            and request.method == rule["method"]
            and request.path.startswith(rule["path_prefix"])
        ):
            rule["count"] -= 1
            if rule["count"] == 0:
                failures.remove(rule)
            return rule
    return None


def injected(rule):
    return web.json_response(
        {"error": {"type": "api_error", "message": "injected"}},
        status=rule["status"],
    )


def idempotency_error(message, status):
    return web.json_response(
        {"error": {"type": "idempotency_error", "message": message}}, status=status
    )


async def answer(request, handler):
    """localstripe's answer, kept for the request's Idempotency-Key as Stripe keeps it."""
    key = request.headers.get("Idempotency-Key")
    if key is None or request.method not in ("POST", "DELETE"):
        return await handler(request)
    body = await request.read()
    kept = idempotent.get(key)
    if kept is not None:
        if (kept["method"], kept["path"], kept["body"]) != (
            request.method,
            request.path,
            body,
        ):
            return idempotency_error(
                "Keys for idempotent requests can only be used with the same parameters "
                "they were first used with.",
                400,
            )
        if kept["answer"] is None:
            return idempotency_error(
                "There is currently another in-progress request using this "
                "Idempotent Key.",
                409,
            )
        replay = web.Response(
            body=kept["answer"], status=kept["status"], content_type=kept["content_type"]
        )
        replay.headers["Idempotent-Replayed"] = "true"
        return replay
    idempotent[key] = {
        "method": request.method,
        "path": request.path,
        "body": body,
        "status": None,
        "answer": None,
        "content_type": None,
    }
    try:
        response = await handler(request)
    except web.HTTPException as e:
        response = e
    except BaseException:
        # Nothing came back from localstripe: like a request that never executed.
        del idempotent[key]
        raise
    if response.status in (401, 429):
        # Refused before the endpoint ran: Stripe keeps no result for these.
        del idempotent[key]
        return response
    idempotent[key].update(
        status=response.status,
        answer=response.body,
        content_type=response.content_type,
    )
    return response


async def fail_next(request):
    try:
        rule = await request.json()
        rule = {
            "method": str(rule.get("method", "POST")).upper(),
            "path_prefix": str(rule["path_prefix"]),
            "status": int(rule.get("status", 500)),
            "count": int(rule.get("count", 1)),
            "after": bool(rule.get("after", False)),
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
    rule = matching_failure(request)
    if rule is not None and not rule["after"]:
        return injected(rule)
    response = await answer(request, handler)
    return injected(rule) if rule is not None else response


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
