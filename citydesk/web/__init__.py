"""The web layer: assembles every sub-package's routes and pages into one ASGI app (``app``), the
background services beside it (``assemble``), error rendering and templates. No logic of its own.
"""
