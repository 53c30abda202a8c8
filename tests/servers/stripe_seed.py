"""Creates the Stripe fixtures of the procedure tests in a running localstripe, through
the official `stripe` library, and prints what it created as one JSON object on stdout.

    stripe_seed.py --api-base http://127.0.0.1:N [--spec JSON]

The default fixture set (`--spec` replaces "plans" and/or "customers", same shapes)
mirrors organizations of runbooks/schema/demo.sql, so a test can point their
`stripe_customer_id` at the seeded customers:

* plans (localstripe has no prices) `starter-monthly` 2900, `pro-monthly` 9900,
  `enterprise-monthly` 49900, usd, monthly, metadata {"tier": ...}; each with its product
  `prod_starter`, `prod_pro`, `prod_enterprise` (same metadata);
* customers, each with a card payment method as default and one subscription:
  - brightline (organization 2, pro), juniper (10, enterprise), driftwood (4, starter):
    card 4242424242424242, subscription `active`, first invoice `paid` through a
    payment intent whose charge `succeeded` (captured, not refunded);
  - ember (5, starter): card 4000000000000341 (attaches, every charge declined):
    subscription `incomplete`, invoice `open`, charge `failed` (card_declined).

Output:

    {"api_base": "...",
     "plans": {"pro-monthly": {"id", "product", "amount", "currency", "interval", "tier"}},
     "customers": {"brightline": {"id", "email", "organization_id", "payment_method",
                   "subscription", "subscription_status", "plan", "invoice",
                   "invoice_status", "payment_intent", "charge", "charge_status",
                   "amount"}},
     "events": [{"id", "type", "object"}]}   # every event localstripe recorded, oldest first

localstripe records events synchronously (product/plan/customer.created, invoice.created,
payment_intent.succeeded, invoice.payment_succeeded, customer.subscription.created); a
declined first payment records no failure event.
"""

import argparse
import json

import stripe

API_KEY = "sk_test_12345"

DEFAULT_SPEC = {
    "plans": [
        {"id": "starter-monthly", "tier": "starter", "name": "Starter", "amount": 2900},
        {"id": "pro-monthly", "tier": "pro", "name": "Pro", "amount": 9900},
        {"id": "enterprise-monthly", "tier": "enterprise", "name": "Enterprise", "amount": 49900},
    ],
    "customers": [
        {"key": "brightline", "organization_id": 2, "name": "Brightline Media",
         "email": "billing@brightline.media", "plan": "pro-monthly",
         "card": "4242424242424242"},
        {"key": "juniper", "organization_id": 10, "name": "Juniper Health",
         "email": "billing@juniperhealth.com", "plan": "enterprise-monthly",
         "card": "4242424242424242"},
        {"key": "driftwood", "organization_id": 4, "name": "Driftwood Blog",
         "email": "billing@driftwood.blog", "plan": "starter-monthly",
         "card": "4242424242424242"},
        {"key": "ember", "organization_id": 5, "name": "Ember & Oak",
         "email": "billing@emberandoak.com", "plan": "starter-monthly",
         "card": "4000000000000341"},
    ],
}


def create_plan(plan):
    metadata = {"tier": plan["tier"]}
    product = stripe.Product.create(
        id=f"prod_{plan['tier']}", name=plan["name"], metadata=metadata
    )
    created = stripe.Plan.create(
        id=plan["id"],
        product=product.id,
        amount=plan["amount"],
        currency=plan.get("currency", "usd"),
        interval=plan.get("interval", "month"),
        nickname=f"{plan['name']} {plan.get('interval', 'month')}ly",
        metadata=metadata,
    )
    return {
        "id": created.id,
        "product": product.id,
        "amount": created.amount,
        "currency": created.currency,
        "interval": created.interval,
        "tier": plan["tier"],
    }


def create_customer(spec):
    card = stripe.PaymentMethod.create(
        type="card",
        card={"number": spec["card"], "exp_month": 12, "exp_year": 2034, "cvc": "123"},
    )
    customer = stripe.Customer.create(
        name=spec["name"],
        email=spec["email"],
        payment_method=card.id,
        invoice_settings={"default_payment_method": card.id},
        metadata={"organization_id": str(spec["organization_id"])},
    )
    subscription = stripe.Subscription.create(
        customer=customer.id,
        items=[{"plan": spec["plan"]}],
        metadata={"organization_id": str(spec["organization_id"])},
    )
    # localstripe expands `invoice.charge` (a whole charge object) and leaves
    # `charge.invoice` null: read the charge through the invoice.
    invoice = stripe.Invoice.retrieve(subscription.latest_invoice).to_dict()
    charge = invoice.get("charge") or {}
    return {
        "id": customer.id,
        "email": customer.email,
        "organization_id": spec["organization_id"],
        "payment_method": card.id,
        "subscription": subscription.id,
        "subscription_status": stripe.Subscription.retrieve(subscription.id).status,
        "plan": spec["plan"],
        "invoice": invoice["id"],
        "invoice_status": invoice["status"],
        "payment_intent": invoice.get("payment_intent"),
        "charge": charge.get("id"),
        "charge_status": charge.get("status"),
        "amount": invoice["total"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--spec", help="JSON object replacing 'plans' and/or 'customers'")
    args = parser.parse_args()
    spec = dict(DEFAULT_SPEC, **(json.loads(args.spec) if args.spec else {}))

    stripe.api_key = API_KEY
    stripe.api_base = args.api_base
    stripe.max_network_retries = 0

    plans = {p["id"]: create_plan(p) for p in spec["plans"]}
    customers = {c["key"]: create_customer(c) for c in spec["customers"]}
    events = [
        {"id": e.id, "type": e.type, "object": e.data.object["id"]}
        for e in stripe.Event.list(limit=100).auto_paging_iter()
    ]
    print(json.dumps({"api_base": args.api_base, "plans": plans,
                      "customers": customers, "events": events}, indent=2))


if __name__ == "__main__":
    main()
