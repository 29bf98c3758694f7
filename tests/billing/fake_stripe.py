"""localstripe (a fake Stripe API server from PyPI) on a free loopback port, for tests/billing/test_stripe.py.

    python tests/billing/fake_stripe.py      # prints the port it listens on, then serves until killed

localstripe 1.15 fakes customers, plans, subscriptions and invoices, but not Checkout or the customer portal.
Those two endpoints are added here, as little as Stripe's contract needs: they refuse an unknown customer (from
localstripe's store) or an unknown price (a localstripe plan: Stripe accepts plan ids as prices), and answer a
session with a URL. The sessions are kept so a test can read back what Kiln asked for
(GET /v1/checkout/sessions/<id>). Nothing is written to disk: localstripe's default is /tmp/localstripe.pickle.
"""
from __future__ import annotations

import asyncio
import socket
import sys
import uuid

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

resources.Store.dump_to_disk = lambda self: None  # one process, one test session: no state file
SESSIONS: dict[str, dict] = {}


async def create_checkout_session(request):
    data = await server.get_post_data(request) or {}
    resources.Customer._api_retrieve(str(data.get("customer", "")))
    if data.get("mode") != "subscription":
        raise UserError(400, "Only subscription mode is faked")
    items = data.get("line_items") or []
    if not items:
        raise UserError(400, "Missing line_items")
    for item in items:
        resources.Plan._api_retrieve(str(item.get("price", "")))
    session_id = f"cs_test_{uuid.uuid4().hex}"
    session = {"id": session_id, "object": "checkout.session", "mode": "subscription",
               "customer": data["customer"], "client_reference_id": data.get("client_reference_id"),
               "line_items": items, "subscription_data": data.get("subscription_data") or {},
               "success_url": data.get("success_url"), "cancel_url": data.get("cancel_url"),
               "url": f"https://checkout.stripe.test/c/pay/{session_id}", "status": "open"}
    SESSIONS[session_id] = session
    return server.json_response(session)


async def get_checkout_session(request):
    session = SESSIONS.get(request.match_info["id"])
    if session is None:
        raise UserError(404, "Not Found")
    return server.json_response(session)


async def create_portal_session(request):
    data = await server.get_post_data(request) or {}
    resources.Customer._api_retrieve(str(data.get("customer", "")))
    session_id = f"bps_{uuid.uuid4().hex}"
    return server.json_response({"id": session_id, "object": "billing_portal.session", "customer": data["customer"],
                                 "return_url": data.get("return_url"),
                                 "url": f"https://billing.stripe.test/p/session/{session_id}"})


server.app.router.add_post("/v1/checkout/sessions", create_checkout_session)
server.app.router.add_get("/v1/checkout/sessions/{id}", get_checkout_session)
server.app.router.add_post("/v1/billing_portal/sessions", create_portal_session)


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    asyncio.set_event_loop(asyncio.new_event_loop())
    web.run_app(server.app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    sys.exit(main())
