"""A Stripe webhook endpoint, as an application would run it, for one test.

    webhook_receiver.py --port N --secret whsec_... --log FILE    (port 0 picks a free one)

* POST /webhooks/stripe verifies `Stripe-Signature` with the official library
  (`stripe.Webhook.construct_event`, default 300 s tolerance). Valid: answers 200
  {"received": true} and appends {"event_id", "type", "verified": true, "status": 200,
  "delivery_id" (the Runbook-Delivery-Id header)}
  to the JSON-lines log FILE. Invalid signature or payload: answers 400 with the reason
  and logs {"event_id", "type" (when the payload says), "verified": false, "reason",
  "status": 400}.
* POST /_test/fail-next {"status": 500, "count": 1}: the next `count` deliveries are still
  verified and logged but answered with `status` (an endpoint that is down).
* GET /_test/deliveries returns the log as a JSON array, oldest first.

Binds 127.0.0.1 only; prints `ready 127.0.0.1:<port>` on stdout once listening.
"""

import argparse
import asyncio
import json

import stripe
from aiohttp import web


def payload_fields(payload):
    """event id and type from a payload whose signature may not hold, for the log."""
    try:
        event = json.loads(payload)
        return {"event_id": event.get("id"), "type": event.get("type")}
    except (ValueError, AttributeError):
        return {"event_id": None, "type": None}


def make_app(secret, log_path):
    failures = []  # statuses to answer next, one per delivery

    def log(entry):
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    async def receive(request):
        payload = await request.read()
        signature = request.headers.get("Stripe-Signature")
        try:
            event = stripe.Webhook.construct_event(payload, signature, secret)
        except stripe.SignatureVerificationError as e:
            reason = str(e)
        except ValueError as e:  # signed, but not a JSON event
            reason = f"invalid payload: {e}"
        else:
            reason = None
        if reason is not None:
            log({**payload_fields(payload), "verified": False, "reason": reason,
                 "status": 400})
            return web.json_response({"error": reason}, status=400)
        status = failures.pop(0) if failures else 200
        log({"event_id": event.id, "type": event.type, "verified": True,
             "status": status,
             "delivery_id": request.headers.get("Runbook-Delivery-Id")})
        if status != 200:
            return web.json_response({"error": "injected"}, status=status)
        return web.json_response({"received": True})

    async def fail_next(request):
        try:
            rule = await request.json()
            status, count = int(rule.get("status", 500)), int(rule.get("count", 1))
        except (ValueError, TypeError, AttributeError) as e:
            return web.json_response({"error": f"bad rule: {e!r}"}, status=400)
        failures.extend([status] * count)
        return web.json_response({"status": status, "count": count})

    async def deliveries(request):
        try:
            with open(log_path, encoding="utf-8") as f:
                entries = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            entries = []
        return web.json_response(entries)

    app = web.Application()
    app.router.add_post("/webhooks/stripe", receive)
    app.router.add_post("/_test/fail-next", fail_next)
    app.router.add_get("/_test/deliveries", deliveries)
    return app


async def serve(port, secret, log_path):
    runner = web.AppRunner(make_app(secret, log_path), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]
    print(f"ready 127.0.0.1:{bound}", flush=True)
    await asyncio.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.secret, args.log))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
