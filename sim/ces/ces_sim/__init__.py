"""A stand-in for Generac's CES API (contracts/ces-api.md), serving the fleet that fleet-sim
simulates, so that metadata, status and telemetry describe the same systems."""

__version__ = "0.1.0"
