"""rates: a freight-rates API (average price per day between ports or regions) and its tooling."""

__version__ = "0.1.0"
