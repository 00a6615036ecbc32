"""Live city status: per-district figures from the data hub, the live stream, and the dashboard.

``measures`` (labels and health bands) and ``air`` (the figures) are pure; ``service`` reads the
hub; ``stream`` is the Server-Sent Events feed; ``live`` is what a worker keeps (``App.status``);
``api`` and ``pages`` are the HTTP shells.
"""
