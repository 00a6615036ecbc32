"""The city-status sections: TOML configuration (``config``), widget kinds computed from the hub
for one caller (``widgets``, ``hubdata``), the service and routes, and the layouts per perspective."""
