"""Leaf modules every layer may use; they import nothing else of the project.

- `names`: what a room, a user and a message id may be named (the contract's rules);
- `ids`: stream ids as comparable numbers;
- `bus_format`: the bus's message format, the one definition every publisher and node uses;
- `codec`: JSON for Socket.IO packets and bus frames.
"""
