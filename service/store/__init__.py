"""Redis: every key name, the scripts, and what each call promises."""
