"""Explanations of segments: profiles, names and suggested actions."""
