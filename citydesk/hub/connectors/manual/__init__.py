"""Connector kind ``manual``: staff type figures in through a form (push mode: nothing is polled)."""
