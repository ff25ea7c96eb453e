"""`s2s-bench serve`: the workbench in a browser tab (textual-serve), behind an access token."""
