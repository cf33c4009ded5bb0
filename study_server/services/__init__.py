"""Study rules as plain Python.

Nothing here touches flask.request, so tests and commands can call services.
"""
