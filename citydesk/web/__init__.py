"""citydesk sub-package."""
