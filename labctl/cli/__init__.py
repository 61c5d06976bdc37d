"""The terminal: typer commands that parse, make one use-case call, and print its result.

app.py holds the typer app, the shared options and the one error handler; lab.py, lifecycle.py and
classroom.py register commands on it; output*.py format results with rich; main.py is the entry
point that gathers the command modules. May import: labctl.ops and the layers below it; nothing
below imports this package.
"""
