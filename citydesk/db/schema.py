"""Imports every sub-package's tables so that ``metadata`` is complete (for migrations and tests)."""

from citydesk.auth import models as auth_models
from citydesk.db.metadata import metadata
from citydesk.geo import models as geo_models
from citydesk.hub import models as hub_models
from citydesk.status import models as status_models

__all__ = ["auth_models", "geo_models", "hub_models", "metadata", "status_models"]
