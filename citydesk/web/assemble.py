"""Assembling a runnable server: the app object, its background services, the ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from citydesk.config import Settings
from citydesk.hub.maintenance import Maintenance
from citydesk.web.app import App, build_app, create_asgi


def attach_services(app: App, *, simulate: bool = False, sensors: int = 4, rate: float = 1.0) -> None:
    """Background services in start order: the bus's link to other workers (first, so that
    nothing published at start-up stays local; stopped last), housekeeping, connectors, MQTT,
    simulator."""
    app.background.append(app.bus)
    app.background.append(Maintenance(app))
    app.background.append(app.latest)
    if app.settings.public_mode:
        # A public instance holds only what `citydesk publish` wrote into it: a connector, the MQTT
        # extension or the simulator would add data that no disclosure rule has passed.
        return
    from citydesk.hub.sources import attach as attach_sources

    attach_sources(app)
    from citydesk.status.alerts import attach as attach_alerts

    attach_alerts(app)
    if app.settings.mqtt_url:
        from citydesk.hub.sta.mqtt import MqttExtension

        app.background.append(MqttExtension(app))
    if simulate:
        from citydesk.simulator import attach as attach_simulator

        attach_simulator(app, sensors_per_district=sensors, rate_per_minute=rate)


def assemble(settings: Settings, *, simulate: bool = False, sensors: int = 4, rate: float = 1.0) -> FastAPI:
    app = build_app(settings)
    attach_services(app, simulate=simulate, sensors=sensors, rate=rate)
    return create_asgi(app)
