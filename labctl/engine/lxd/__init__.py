"""LXD (and Incus) as labctl's engine: the only code that runs `lxc`/`incus` (argv lists, timeouts,
no shell). `adapter.py` implements labctl.engine.base.Engine; `commands.py` builds the command
lines, `parse.py` and `errors.py` are the pure parsers and failure classification. What it relies
on: docs/engines/lxd.md.
"""
