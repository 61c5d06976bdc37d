"""The terminal: typer commands that parse, make one use-case call, and print its result.

app.py holds the typer app, the shared options, the consoles and the one error handler; each
command lives in its own module under commands/, loaded when it runs; labs.py opens contexts and
forks a single lab from a class once; printers/ and jsonout.py hold the output that several
commands share; main.py is the entry point. May import: labctl.ops and the layers below it;
nothing below imports this package.
"""
