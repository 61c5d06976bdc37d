"""lab.yaml: the one place it is read and validated.

Owns: loading with line/column positions (yamlpos.py), validation into the frozen lab model with
every problem reported as `file:line:col: field: message` (load.py), and the class roster
(classroom.py). May import: labctl.errors, labctl.model. Nothing here runs a process or touches
the network.
"""
