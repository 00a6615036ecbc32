"""The data hub's sources: configured connectors, their runner, status, quarantine, manual entry.

Other sub-packages (and the web assembly) import from here: ``router`` and ``pages_router`` for
the routes, ``attach`` to add the runner to ``app.background``, and the service functions.
"""

from citydesk.hub.sources.api import router
from citydesk.hub.sources.pages import pages_router
from citydesk.hub.sources.runner import Backoff, SourceRunner, attach, runner_of
from citydesk.hub.sources.service import (
    create_source,
    delete_source,
    find_source,
    get_source,
    list_quarantine,
    list_sources,
    quarantine_listing,
    record_run,
    save_cursor,
    source_json,
    sources_listing,
    update_source,
    writable_datastreams,
)
from citydesk.hub.sources.types import (
    DatastreamChoice,
    QuarantinePage,
    RunOutcome,
    Source,
    SourceIn,
    SourcePatch,
    SourceState,
    SourceStatus,
)

__all__ = [
    "Backoff",
    "DatastreamChoice",
    "QuarantinePage",
    "RunOutcome",
    "Source",
    "SourceIn",
    "SourcePatch",
    "SourceRunner",
    "SourceState",
    "SourceStatus",
    "attach",
    "create_source",
    "delete_source",
    "find_source",
    "get_source",
    "list_quarantine",
    "list_sources",
    "pages_router",
    "quarantine_listing",
    "record_run",
    "router",
    "runner_of",
    "save_cursor",
    "source_json",
    "sources_listing",
    "update_source",
    "writable_datastreams",
]
