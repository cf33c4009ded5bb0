"""Blueprints: participant pages, the participant JSON API and researcher pages."""
