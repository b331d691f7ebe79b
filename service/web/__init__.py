"""HTTP: accounts and log-in, the publish API, health, the page, CSRF, JSON errors, sessions."""
