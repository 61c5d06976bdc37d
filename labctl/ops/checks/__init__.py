"""`labctl check`'s checks: the built-in ones (builtin.py, disruptive.py) and lab.yaml's (custom.py)."""
