"""Development tools that do not ship in the service image."""
