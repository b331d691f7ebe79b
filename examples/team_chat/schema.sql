CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    team TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS teams (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL
);

-- what the webhooks reported, once each: a retried event has the same id
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    room TEXT,
    user TEXT,
    ts INTEGER NOT NULL,
    body TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_room ON events (room, ts);
