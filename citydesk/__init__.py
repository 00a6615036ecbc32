"""citydesk: an open smart-city platform.

The package tree reads like the product: ``hub`` takes data in and serves it as SensorThings,
``geo`` knows the city's districts, ``auth`` decides who sees what, ``web`` assembles the app.
"""

__version__ = "0.1.0"
