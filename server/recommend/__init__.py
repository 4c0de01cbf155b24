"""Recommendations: engagement history blended with content similarity (see docs/recommend.md)."""
