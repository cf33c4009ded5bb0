"""Blueprints: participant pages and the participant JSON API."""
