"""The app's screens: chat, models, loaded model, history, settings, and small dialogs."""
