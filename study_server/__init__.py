"""The study server: a Flask app for timed real-vs-generated trials."""
