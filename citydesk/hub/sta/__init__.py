"""OGC SensorThings API 1.1 (Sensing): one generic layer over the eight entity sets.

``entities`` describes the sets; ``paths`` and ``query`` parse a request; ``read`` (with
``extent`` for a Datastream's observedArea and resultTime) and ``write`` (with ``write_obs``) do
the work under ``access`` rules; ``service`` opens the transactions and announces changes;
``batch`` runs ``$batch`` requests (formats in ``batch_json`` and ``batch_multipart``) through
``service``; ``api`` is the HTTP shell and ``mqtt`` the MQTT extension.
"""
