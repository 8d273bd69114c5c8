"""The PI30 battery inverter (MPP-Solar / Voltronic / Axpert, issue 11): `codec` (frames, CRC,
typed answers; pure)."""
