"""The bus of one process: local delivery, plus the link to other processes that ``BUS_URL`` names.

With ``memory://`` (the embedded default) it is the in-process bus and nothing more. With
``redis://`` or ``nats://`` every event of a forwarded topic (``citydesk.bus.topics``) is also
sent, in its portable form, to the other workers, and theirs are delivered here: to every
subscription, and to the handlers registered with ``remote=True``.
"""

from __future__ import annotations

from typing import Any

from citydesk.bus.memory import Event, MemoryBus
from citydesk.bus.remote import RemoteLink, Transport, transport_for


class Bus(MemoryBus):
    """The app's bus; also a background service (``start``/``stop`` run the remote link)."""

    name = "event bus"

    def __init__(self, transport: Transport | None = None) -> None:
        super().__init__()
        self.link = RemoteLink(transport, self.deliver) if transport is not None else None

    @classmethod
    def from_url(cls, url: str) -> Bus:
        """The bus ``BUS_URL`` asks for; ``InvalidSetting`` for an unknown scheme or missing package."""
        return cls(transport_for(url))

    @property
    def state(self) -> str:
        return "in-process only" if self.link is None else self.link.state

    def check(self) -> None:
        """Raise ``BusUnavailable`` unless the remote bus (if any) answers now."""
        if self.link is not None:
            self.link.check()

    async def start(self) -> None:
        """Run the link to the other workers; until then (and after ``stop``) events stay here."""
        if self.link is not None:
            await self.link.start()

    async def stop(self) -> None:
        """Send what is still queued (briefly), then disconnect."""
        if self.link is not None:
            await self.link.stop()

    def publish(self, topic: str, data: dict[str, Any]) -> Event:
        """Deliver here at once, then queue the portable form for the other processes."""
        event = super().publish(topic, data)
        if self.link is not None and event.portable is not None:
            self.link.send(topic, event.portable)
        return event
