"""Between nodes: the message format, channels per room and user, subscriptions, recovery,
and the emitter any process can use."""
