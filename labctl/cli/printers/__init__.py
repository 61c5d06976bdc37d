"""Printing that several commands share: failures and the serving line, per-student sections,
the capacity table, check grades. Each takes the consoles it prints on; none registers a command
or imports a command module."""
