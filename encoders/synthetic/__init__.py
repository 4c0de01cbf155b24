"""The synthetic world (seeded captioned pictures) and the demo CLIP trained and evaluated on it."""
