"""Widgets of the app.  None of them talks to the engine; screens do."""
