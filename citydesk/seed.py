"""``citydesk seed``: load the demo data set into the configured database.

Each capability contributes a seeder (districts and dongs from the packaged Seoul boundaries
first); every seeder is idempotent, so seeding twice leaves the same rows.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from citydesk.geo import load_boundaries, read_districts, read_dongs

Seeder = Callable[[Engine], str]


def seed_geography(engine: Engine) -> str:
    districts, dongs = read_districts(), read_dongs()
    with engine.begin() as conn:
        load_boundaries(conn, districts, dongs)
    return f"{len(districts)} districts, {len(dongs)} dongs"


def seed_city_data(engine: Engine) -> str:
    """Seoul's facilities (real) and the city-status demo feeds (see ``citydesk.city``)."""
    from citydesk.city import seed_city

    return seed_city(engine)


def seed_alerts(engine: Engine) -> str:
    from citydesk.status.alerts import seed_alert_rules  # the status package loads the web layer

    return seed_alert_rules(engine)


SEEDERS: list[tuple[str, Seeder]] = [
    ("geography", seed_geography),
    ("city data", seed_city_data),
    ("alert rules", seed_alerts),
]


def seed(engine: Engine) -> list[tuple[str, str]]:
    """Run every seeder in order; returns (name, what it loaded) for the CLI to print."""
    return [(name, fn(engine)) for name, fn in SEEDERS]
