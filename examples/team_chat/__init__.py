"""Team chat: a small application on top of the rooms service (docs/using.md, "Your app on
top"). Its backend keeps its own users in SQLite, issues their JWTs, makes each team a private
room, moderates what is said through the send hook, and stores what the webhooks report."""
