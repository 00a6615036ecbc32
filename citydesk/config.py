"""Settings, read once from the environment (and an optional TOML file).

Every knob a city's data team may turn lives here with its default, so that the embedded demo
needs none of them and production sets only what differs.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

DEFAULT_DATA_DIR = Path("citydesk-data")


class Settings(BaseModel):
    """Runtime configuration of one citydesk instance."""

    database_url: str = Field(default=f"sqlite:///{DEFAULT_DATA_DIR}/citydesk.db")
    mqtt_url: str | None = None
    """``mqtt://host:port``: the broker for the SensorThings MQTT extension and MQTT sources."""
    bus_url: str = "memory://"
    """The event bus between workers: ``memory://`` (one process), ``redis://host:port/db`` or
    ``nats://host:port`` (JetStream); see ``citydesk.bus``."""
    public_mode: bool = False
    """A public instance: serves only what is disclosable and accepts no staff writes to internal data."""
    secret_key: str = "citydesk-dev-secret-change-me"
    base_url: str = "http://127.0.0.1:8000"
    sta_default_top: int = 100
    sta_max_top: int = 10_000
    count_exact_limit: int = 100_000
    """``$count`` is exact up to this many rows, an estimate from the planner above it."""
    max_future_seconds: int = 3600
    """Observations stamped further than this in the future are rejected as clock errors."""
    city_bbox: tuple[float, float, float, float] = (126.70, 37.38, 127.25, 37.75)
    """lon_min, lat_min, lon_max, lat_max: positions outside are rejected."""
    h3_resolution: int = 9
    timezone: str = "Asia/Seoul"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings from ``CITYDESK_CONFIG`` (a TOML file) overlaid with environment variables.

        Variables are the field names in upper case (``DATABASE_URL``, ``MQTT_URL``, ...).
        """
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        config_file = env.get("CITYDESK_CONFIG")
        if config_file:
            with open(config_file, "rb") as fh:
                values.update(tomllib.load(fh))
        for name in cls.model_fields:
            raw = env.get(name.upper())
            if raw is None:
                continue
            if name == "city_bbox":
                values[name] = tuple(float(x) for x in raw.split(","))
            elif name == "public_mode":
                values[name] = raw.strip().lower() in {"1", "true", "yes", "on"}
            else:
                values[name] = raw
        return cls(**values)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
