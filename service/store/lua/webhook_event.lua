#!lua
-- Record a room's webhook event other than a message (outbox.py: record_room_event).
-- KEYS[1] the room's webhook events, KEYS[2] its webhook marker
-- ARGV[1] type, ARGV[2] user, ARGV[3] action
-- Returns 1 if it set the marker (the caller indexes the room), else 0.
return record_event(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
