"""CLI command modules; each has ``register(app, collect_app)``."""
