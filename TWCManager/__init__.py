"""TWCManager: RS-485 load-sharing master for Tesla Wall Connector Gen2 units."""
