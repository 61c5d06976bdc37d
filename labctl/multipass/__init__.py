"""The door to Multipass: the only code that runs `multipass` (argv lists, timeouts, no shell).

Owns: the adapter (adapter.py), pure parsers of `--format json` output (parse.py) and the
classification of failures into labctl errors (errors.py), all per ../shared/reference/multipass.md.
May import: labctl.errors, labctl.model.
"""
