"""The event bus: how a stored batch reaches live aggregates, alert rules, SSE and MQTT.

The in-process bus is the embedded default. Publishing is thread-safe and never blocks the
writer: a slow subscriber loses its oldest queued events (and is told how many), never the store.
"""

from citydesk.bus.memory import Event, MemoryBus, Subscription

__all__ = ["Event", "MemoryBus", "Subscription"]
