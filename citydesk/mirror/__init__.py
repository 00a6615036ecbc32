"""The public mirror: ``citydesk publish`` copies the disclosable subset of the internal database,
one way, into the database of a public instance (``PUBLIC_MODE=1``).

Other sub-packages import from here: ``publish_once`` and ``Publisher`` (a run, a loop of runs),
``last_published`` (the landing page's "last published at").
"""

from citydesk.mirror.service import Publisher, PublishReport, publish_once
from citydesk.mirror.state import last_published

__all__ = ["PublishReport", "Publisher", "last_published", "publish_once"]
