"""Connector kind ``mqtt``: subscribes to a broker (SensorThings topics or plain device topics)."""
