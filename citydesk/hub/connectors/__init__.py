"""Connector kinds: one folder each (manifest, config schema, strings, connector, tests), found
and loaded lazily by ``registry``; ``base`` states the contract every kind follows.
"""
