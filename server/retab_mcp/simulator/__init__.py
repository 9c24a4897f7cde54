"""A simulated Retab API for the demo and the tests: no key, no network."""

from .app import Fault, RecordedRequest, SimulatedRetab

__all__ = ["Fault", "RecordedRequest", "SimulatedRetab"]
