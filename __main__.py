"""shipsafe: the stack program (`components/program.py`), run by `pulumi preview` / `pulumi up` in this project."""

from components.program import run

run()
