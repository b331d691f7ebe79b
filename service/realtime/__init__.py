"""Socket.IO events: authenticate connections, validate events, call the store and the bus."""
