"""The reference app's tests import `notes_app` in-process; the real-server fixtures come from tests/conftest.py."""

from __future__ import annotations

import sys

from tests.support.services import APP_DIR

# The app is not an installed package (the image copies it to /app): make `import notes_app` work here.
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))
