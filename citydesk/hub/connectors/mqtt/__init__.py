"""Connector kind ``mqtt``: subscribes to a broker (SensorThings topics or plain device topics)."""

ORIGIN = ("citydesk-origin", "server")
"""MQTT 5 user property on what citydesk's own SensorThings publisher (``hub.sta.mqtt``) sends, so
that an ``mqtt`` source subscribed to the same topics does not take the echo as new data."""
