"""The built-in S-DoT sensor simulator: a living demo city that uses the real ingest path.

Seoul's S-DoT network (about 1,100 pole-mounted sensors) measures PM10, PM2.5, temperature,
humidity, illuminance, noise, vibration, wind direction, wind speed and UV, and counts passers-by.
This package places simulated sensors inside Seoul's real districts, derives their levels from
the real 2019 daily air quality per district and the 2005–2021 monthly climate (``calibration``),
shapes them with daily cycles, noise and occasional PM spikes (``model``), provisions them as
SensorThings entities (``layout``) and streams readings through ``app.ingest`` like any other
source (``runner``). ``attach(app)`` adds it to the app's background services.
"""

from citydesk.simulator.calibration import Calibration, load_calibration
from citydesk.simulator.runner import Simulator, attach

__all__ = ["Calibration", "Simulator", "attach", "load_calibration"]
