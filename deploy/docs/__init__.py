"""The generated docs pages: one generator per page, all written or checked by `python -m deploy.docs [--check]`
(`deploy.docs.pages` lists them)."""
