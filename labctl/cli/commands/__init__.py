"""One module per `labctl` command: its options, its one use-case call (through labs.py when it
acts on a lab or a class) and its printer. Each module's typer app is `cli`; app.COMMANDS names
the module, which is imported only when its command runs. No command module imports another."""
