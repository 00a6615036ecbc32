"""The ``citydesk`` command: migrate, seed, serve, demo, import, user, check, retention.

``citydesk demo`` is ``migrate`` + ``seed`` + ``serve --simulate`` on the embedded default; each
step is also a command of its own for a city that runs them separately.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable, Sequence

from citydesk.config import Settings
from citydesk.errors import CitydeskError

log = logging.getLogger("citydesk")


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    from citydesk.db import make_engine

    return make_engine(settings.database_url)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from citydesk.db import upgrade
    from citydesk.db.migrate import current_revision

    engine = _engine(settings)
    upgrade(engine)
    print(
        f"database {engine.url.render_as_string(hide_password=True)} is at revision {current_revision(engine)}"
    )
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    from citydesk.db import check_current
    from citydesk.seed import seed

    engine = _engine(settings)
    check_current(engine)
    for name, what in seed(engine):
        print(f"seeded {name}: {what}")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from citydesk.web.assemble import assemble
    from citydesk.web.heap import tune_for_serving

    print(f"citydesk serving on http://{args.host}:{args.port}  (API docs: /docs, SensorThings: /sta/v1.1)")
    if args.workers > 1:
        # Several processes: each builds its own app from the environment (see citydesk.web.asgi).
        uvicorn.run(
            "citydesk.web.asgi:create",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="warning",
            access_log=False,
        )
        return 0
    api = assemble(settings, simulate=args.simulate, sensors=args.sensors, rate=args.rate)
    tune_for_serving()
    uvicorn.run(api, host=args.host, port=args.port, log_level="info", access_log=False)
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    cmd_migrate(settings, args)
    cmd_seed(settings, args)
    _demo_accounts(settings)
    args.simulate = True
    args.workers = 1
    if args.public_port:
        from citydesk.mirror.demo import serve_pair

        serve_pair(
            settings,
            public_url=args.public_database,
            host=args.host,
            port=args.port,
            public_port=args.public_port,
            sensors=args.sensors,
            rate=args.rate,
        )
        return 0
    return cmd_serve(settings, args)


def _demo_accounts(settings: Settings) -> None:
    """The mayor and one clerk per department, with fresh random passwords shown only here (never
    in ``seed``: production databases are seeded too)."""
    from datetime import UTC, datetime

    from citydesk.status.commands import demo_accounts

    print("demo accounts (new random passwords on every `citydesk demo`; sign in at /login):")
    for account in demo_accounts(_engine(settings), now=datetime.now(UTC)):
        where = f" {account.department}" if account.department else ""
        secret = account.password or "(an account of this name exists: left unchanged)"
        print(f"  {account.name:<16} {secret:<18} {account.role.value}{where}")


def cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    """Copy the disclosable subset of this instance's database into a public instance's, one way."""
    import asyncio
    import contextlib
    from datetime import UTC, datetime

    from citydesk.db import check_current, make_engine
    from citydesk.mirror import Publisher, PublishReport

    source, target = _engine(settings), make_engine(args.to)
    if source.url == target.url:
        print("error: --to names this instance's own database", file=sys.stderr)
        return 2
    check_current(source)
    check_current(target)
    notify = None
    if args.notify:
        from citydesk.bus import Bus

        notify = Bus.from_url(args.notify)
        notify.check()
    publisher = Publisher(
        source,
        target,
        lambda: datetime.now(UTC),
        interval=args.interval,
        timezone=settings.timezone,
        notify=notify,
    )

    def show(report: PublishReport) -> None:
        if report.changed or not args.follow:
            print("\n".join(report.lines()), flush=True)

    if not args.follow:
        show(publisher.run_once())
        return 0
    print(f"publishing every {args.interval:g} s to {target.url.render_as_string(hide_password=True)}")

    async def follow() -> None:
        if notify is not None:
            await notify.start()
        try:
            await publisher.loop(show)
        finally:
            if notify is not None:
                await notify.stop()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends following; a run is one transaction
        asyncio.run(follow())
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from citydesk.web.app import build_app

    try:
        from citydesk.hub.connectors.file.connector import import_file
    except ImportError:
        print("the file connector is not installed", file=sys.stderr)
        return 2
    app = build_app(settings)
    r = import_file(app, args.path, source_name=args.source)
    print(
        f"imported {r.path}: {r.stored} stored, {r.duplicates} already there, "
        f"{r.rejected} rejected (see /hub/quarantine) in {r.seconds:.1f} s"
    )
    return 0


def cmd_user(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from citydesk.auth import create_user, parse_role
    from citydesk.db import check_current

    engine = _engine(settings)
    check_current(engine)
    password = args.password or getpass.getpass(f"password for {args.name}: ")
    user = create_user(
        engine, args.name, parse_role(args.role), password, now=datetime.now(UTC), department=args.department
    )
    print(f"created user {user.name} ({user.role})")
    return 0


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from citydesk.hub.connectors.registry import ConnectorRegistry

    problems = ConnectorRegistry().validate_manifests()
    for p in problems:
        print(p)
    print("all connector manifests and strings are valid" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_retention(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from citydesk.hub.retention import apply_retention

    for line in apply_retention(_engine(settings), now=datetime.now(UTC)):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="citydesk", description="Open smart-city platform")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, tuple[Callable[[Settings, argparse.Namespace], int], str]] = {
        "migrate": (cmd_migrate, "apply database migrations (SQLite or PostgreSQL)"),
        "seed": (cmd_seed, "load the demo data set (Seoul districts and dongs, ...)"),
        "serve": (cmd_serve, "run the web app and the connectors"),
        "demo": (cmd_demo, "migrate + seed + serve with the sensor simulator"),
        "import": (cmd_import, "import a CSV/JSON/GeoJSON file through a file source"),
        "user": (cmd_user, "manage staff users"),
        "check": (cmd_check, "validate every connector manifest and strings file"),
        "retention": (cmd_retention, "drop raw observations past each family's retention"),
        "publish": (cmd_publish, "copy the disclosable subset one way into a public instance's database"),
    }
    parsers = {}
    for name, (fn, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=fn)
        parsers[name] = p
    for name in ("serve", "demo"):
        p = parsers[name]
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        p.add_argument("--sensors", type=int, default=4, help="simulated S-DoT sensors per district")
        p.add_argument("--rate", type=float, default=1.0, help="simulated readings per sensor per minute")
    parsers["serve"].add_argument("--simulate", action="store_true", help="run the S-DoT simulator")
    parsers["demo"].add_argument(
        "--public-port", type=int, help="also serve the public mirror on this port (published every 2 s)"
    )
    parsers["demo"].add_argument(
        "--public-database",
        default="sqlite:///citydesk-data/public.db",
        metavar="DATABASE_URL",
        help="the public mirror's own database (with --public-port)",
    )
    parsers["serve"].add_argument(
        "--workers", type=int, default=1, help="web worker processes (no simulator)"
    )
    parsers["publish"].add_argument(
        "--to", required=True, metavar="DATABASE_URL", help="the public instance's database (migrated)"
    )
    parsers["publish"].add_argument("--follow", action="store_true", help="keep publishing what is new")
    parsers["publish"].add_argument(
        "--notify",
        metavar="BUS_URL",
        help="with --follow: the public instance's BUS_URL (Redis or NATS), to make its live pages update",
    )
    parsers["publish"].add_argument(
        "--interval", type=float, default=5.0, help="seconds between runs with --follow"
    )
    parsers["import"].add_argument("path")
    parsers["import"].add_argument(
        "--source", required=True, help="name of a file source with the field mapping"
    )
    user_sub = parsers["user"].add_subparsers(dest="action", required=True)
    create = user_sub.add_parser("create", help="create a staff user")
    create.add_argument("name")
    create.add_argument("--role", required=True, help="admin, mayor, official or department_staff (staff)")
    create.add_argument("--password")
    create.add_argument("--department")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    settings = Settings.from_env()
    try:
        return int(args.func(settings, args))
    except CitydeskError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
