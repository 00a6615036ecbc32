"""The demo's two deployments in one process: the internal instance and its public mirror.

``citydesk demo --public-port 8001`` serves the internal instance (with the simulator) and, on a
second port, a public instance (``PUBLIC_MODE``) on a database of its own, kept up to date by a
``Publisher`` running as one of the internal app's background services. In production the two
are separate servers and ``citydesk publish --follow`` runs on the internal side.
"""

from __future__ import annotations

import asyncio

from citydesk.config import Settings
from citydesk.db import make_engine, upgrade
from citydesk.mirror.service import Publisher, publish_once

PUBLISH_INTERVAL = 2.0


def public_settings(settings: Settings, database_url: str) -> Settings:
    """The public instance's settings: its own database and bus, no broker, public mode."""
    return settings.model_copy(
        update={"database_url": database_url, "public_mode": True, "bus_url": "memory://", "mqtt_url": None}
    )


def serve_pair(
    settings: Settings, *, public_url: str, host: str, port: int, public_port: int, sensors: int, rate: float
) -> None:
    import uvicorn

    from citydesk.web.app import build_app, create_asgi
    from citydesk.web.assemble import attach_services

    public_engine = make_engine(public_url)
    upgrade(public_engine)
    internal = build_app(settings)
    attach_services(internal, simulate=True, sensors=sensors, rate=rate)
    # The public app reads its geography when it is built: publish once before.
    publish_once(internal.engine, public_engine, now=internal.now(), timezone=settings.timezone)
    public = build_app(public_settings(settings, public_url), engine=public_engine)
    attach_services(public)
    publisher = Publisher(
        internal.engine,
        public_engine,
        internal.now,
        interval=PUBLISH_INTERVAL,
        timezone=settings.timezone,
        notify=public.bus,  # one process: the public dashboards hear of each run at once
    )
    internal.background.append(publisher)
    servers = [
        uvicorn.Server(
            uvicorn.Config(create_asgi(app), host=host, port=p, log_level="info", access_log=False)
        )
        for app, p in ((internal, port), (public, public_port))
    ]
    print(f"internal instance: http://{host}:{port}   public mirror: http://{host}:{public_port}")

    async def both() -> None:
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for s in servers:  # Ctrl-C reaches one of them: stop the other too
            s.should_exit = True
        await asyncio.gather(*tasks)

    asyncio.run(both())
