"""shipsafe's ComponentResources, one per module; settings.py holds the validated stack settings."""
