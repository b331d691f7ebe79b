"""Your app's backend, asked and told: the join and send hooks that decide, and the webhooks that
report what happened. Every request is signed (signing.py)."""
