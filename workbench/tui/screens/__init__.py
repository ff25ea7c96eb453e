"""The app's screens: runs, dashboard, decode, attention, and the modals they open."""
