"""Connector kind ``sql_db``: reads new rows from another database with a read-only query."""
