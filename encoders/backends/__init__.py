"""Concrete encoders. Import through :func:`encoders.load_encoder`, not directly."""
