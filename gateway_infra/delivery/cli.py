"""Command line of webhook delivery: `retail-gateway webhooks ...` and `... deliveries ...`.

gateway.py adds these commands to its parser and runs them on a wired gateway; each returns an
exit code, the data for --json and the lines for people.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from gateway_infra.delivery.admin import DeadLetterQuery, DeliveryAdminError
from gateway_infra.delivery.engine import WebhookDelivery
from gateway_infra.delivery.models import Delivery, Subscription
from gateway_infra.delivery.subscriptions import SubscriptionError

ACTOR = "cli"
Outcome = tuple[int, dict[str, Any], str]


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. Z or +00:00): {value!r}")
    return parsed


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    handler: Callable[[argparse.Namespace, Any], int],
) -> None:
    """The `webhooks` and `deliveries` command groups."""
    webhooks = commands.add_parser("webhooks", help="manage partner webhook subscriptions")
    sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    add = sub.add_parser("add", help="register a webhook; prints its signing secret once")
    add.add_argument("--channel", required=True, help="the channel whose events it receives")
    add.add_argument("--url", required=True, help="https URL on a public address")
    add.add_argument(
        "--types", nargs="+", help="event types, space or comma separated (default: all)"
    )
    add.add_argument("--description")
    listing = sub.add_parser("list", help="list webhooks")
    listing.add_argument("--channel")
    listing.add_argument("--all", action="store_true", help="include deleted ones")
    for name, help_text in (
        ("disable", "stop calling it; its events wait"),
        ("enable", "call it again; waiting events go out in order"),
    ):
        change = sub.add_parser(name, help=help_text)
        change.add_argument("subscription_id")
    rotate = sub.add_parser(
        "rotate-secret", help="new signing secret; the old one signs too during the overlap"
    )
    rotate.add_argument("subscription_id")
    rotate.add_argument(
        "--overlap-seconds", type=int, help="how long the old secret keeps signing (default 24 h)"
    )
    for parser in sub.choices.values():
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
    webhooks.set_defaults(handler=handler)

    deliveries = commands.add_parser("deliveries", help="dead letters, replay and re-send")
    dsub = deliveries.add_subparsers(dest="deliveries_command", required=True)
    dead = dsub.add_parser("dead-letters", help="list deliveries that gave up")
    replay = dsub.add_parser(
        "replay", help="replay one dead letter by id, or those of --channel (and --type)"
    )
    replay.add_argument("delivery_id", nargs="?", type=int)
    for parser in (dead, replay):
        parser.add_argument("--channel")
        parser.add_argument("--type", dest="event_type")
        parser.add_argument("--subscription", dest="subscription_id")
    dead.add_argument("--limit", type=int, default=100)
    resend = dsub.add_parser("resend", help="send a channel's events of a time range again")
    resend.add_argument("--channel", required=True)
    resend.add_argument("--from", dest="start", type=_timestamp, required=True)
    resend.add_argument("--to", dest="end", type=_timestamp, required=True)
    resend.add_argument("--subscription", dest="subscription_id")
    resend.add_argument("--types", nargs="+")
    for parser in dsub.choices.values():
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
    deliveries.set_defaults(handler=handler)


def _types(raw: list[str] | None) -> list[str] | None:
    if not raw:
        return None
    return [t for part in raw for t in part.replace(",", " ").split()]


def _subscription_line(s: Subscription) -> str:
    return f"{s.subscription_id}  {s.channel:<12} {s.state.value:<8} {s.url}"


def _delivery_line(d: Delivery) -> str:
    return (
        f"{d.delivery_id:>8}  {d.channel:<12} {d.event_type:<24} {d.subject:<28} "
        f"attempts={d.attempts} last={d.last_status_code or '-'} {d.last_error or ''}"
    )


async def _webhooks(args: argparse.Namespace, delivery: WebhookDelivery) -> Outcome:
    subs = delivery.subscriptions
    command = args.webhooks_command
    if command == "add":
        made = await subs.create(
            channel=args.channel,
            url=args.url,
            event_types=_types(args.types) or list(delivery.allowed_types),
            description=args.description,
        )
        view = made.subscription
        return (
            0,
            {**view.model_dump(mode="json"), "secret": made.secret},
            f"id={view.subscription_id}\nsecret={made.secret}\n(the secret is shown once)",
        )
    if command == "list":
        found = await subs.list(channel=args.channel, include_deleted=args.all)
        return (
            0,
            {"webhooks": [s.model_dump(mode="json") for s in found]},
            "\n".join(_subscription_line(s) for s in found) or "no webhooks",
        )
    if command in ("disable", "enable"):
        if command == "disable":
            changed = await subs.disable(args.subscription_id, reason="disabled by an operator")
        else:
            changed = await subs.enable(args.subscription_id)
        return 0, changed.model_dump(mode="json"), _subscription_line(changed)
    overlap = None if args.overlap_seconds is None else timedelta(seconds=args.overlap_seconds)
    rotated = await subs.rotate_secret(args.subscription_id, overlap=overlap)
    view = rotated.subscription
    until = view.previous_secret_expires_at
    return (
        0,
        {**view.model_dump(mode="json"), "secret": rotated.secret},
        f"id={view.subscription_id}\nsecret={rotated.secret}\n"
        + (f"the old secret signs too until {until.isoformat()}" if until else ""),
    )


async def _deliveries(args: argparse.Namespace, delivery: WebhookDelivery) -> Outcome:
    admin = delivery.admin
    command = args.deliveries_command
    if command == "resend":
        count = await admin.resend(
            channel=args.channel,
            start=args.start,
            end=args.end,
            actor=ACTOR,
            subscription_id=args.subscription_id,
            event_types=_types(args.types),
        )
        return 0, {"scheduled": count}, f"{count} deliveries scheduled"
    query = DeadLetterQuery(
        channel=args.channel, subscription_id=args.subscription_id, event_type=args.event_type
    )
    if command == "dead-letters":
        found = await admin.dead_letters(query, limit=args.limit)
        return (
            0,
            {"dead_letters": [d.model_dump(mode="json") for d in found]},
            "\n".join(_delivery_line(d) for d in found) or "no dead letters",
        )
    if args.delivery_id is not None:
        replayed = await admin.replay(args.delivery_id, actor=ACTOR)
        return 0, replayed.model_dump(mode="json"), f"delivery {replayed.delivery_id} replayed"
    if args.channel is None:
        return 2, {}, "name a delivery id, or --channel (and --type, --subscription)"
    count = await admin.replay_dead(query, actor=ACTOR)
    return 0, {"replayed": count}, f"{count} dead letters replayed"


def run(args: argparse.Namespace, delivery: WebhookDelivery) -> Outcome:
    """Run the parsed command; errors a person can fix answer exit code 2 and a message."""
    command = _webhooks if args.command == "webhooks" else _deliveries
    try:
        return asyncio.run(command(args, delivery))
    except (SubscriptionError, DeliveryAdminError) as exc:
        return 2, {}, str(exc)
