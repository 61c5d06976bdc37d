"""Multipass as labctl's engine: the only code that runs `multipass` (argv lists, timeouts, no
shell). `adapter.py` implements labctl.engine.base.Engine; `parse.py` and `errors.py` are the pure
parsers and failure classification it uses. What it relies on: docs/engines/multipass.md.
"""
