"""Switches fault injection on in every Python process started with this directory on PYTHONPATH.

Python imports `sitecustomize` at startup (the `site` module), so `python -m notes_app serve` itself runs faulty,
whatever command the pod spec or a test gives: only the test image target (`app/Dockerfile`, target `faulty`) and
the tests put this directory on the path. The production image never contains it.
"""

import notes_faults

notes_faults.install_from_env()
