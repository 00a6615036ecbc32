"""The event bus: how a stored batch reaches live aggregates, alert rules, SSE and MQTT.

Every process has one ``Bus``. Delivery inside the process is immediate and thread-safe and never
blocks the writer: a slow subscriber loses its oldest queued events (and is told how many), never
the store. With ``BUS_URL`` naming Redis or NATS JetStream, events of the topics listed in
``citydesk.bus.topics`` also reach the other workers, as JSON, at most once.
"""

from citydesk.bus.memory import Event, MemoryBus, Subscription
from citydesk.bus.process import Bus
from citydesk.bus.topics import FORWARDED, CompactDatastream, CompactObservations

__all__ = [
    "FORWARDED",
    "Bus",
    "CompactDatastream",
    "CompactObservations",
    "Event",
    "MemoryBus",
    "Subscription",
]
