"""The data hub: every record the city collects comes in here and is served from here.

Ingestion (``ingest``: validate, store, quarantine, announce) is shared by every channel: the
SensorThings API (``sta``), connectors and sources (``connectors``, ``sources``), MQTT and the
simulator. ``store`` writes observations with their rollups and latest values; ``retention`` and
``maintenance`` keep the volume in check; ``latest`` and ``sta.aggregate`` serve the live views.
"""
