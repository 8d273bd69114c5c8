"""The Tesla Wall Connector Gen2 side: frames, messages, what we know of each unit, the RS-485
master engine and the serial line. Knows nothing of the sun, tariffs or settings files."""
