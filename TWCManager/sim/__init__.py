"""Simulated TWC Gen2 slaves with cars, a pty/serial runner and a sniffer (no hardware needed)."""
from .runner import FrameLog, PtyPair, SimBus, Sniffer, open_pty
from .twc import CAR_MODES, Car, SimulatedTWC

__all__ = [
    "CAR_MODES",
    "Car",
    "FrameLog",
    "PtyPair",
    "SimBus",
    "SimulatedTWC",
    "Sniffer",
    "open_pty",
]
