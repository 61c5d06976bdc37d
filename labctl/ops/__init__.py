"""Use cases: up, status, down, plan, drill, reset, snapshot, doctor, logs/exec (access.py).

Each takes a LabContext (context.py) and returns a frozen result; progress goes out as events;
nothing here prints. classroom/ is the fan-out of these use cases over a class's students.
May import: labctl.config, labctl.render, labctl.engine (base, registry, proxy, recording:
never an engine's own package), labctl.host, labctl.errors,
labctl.model. Single-lab use cases never import classroom/.
"""
