"""Classroom mode: a class is the single-lab use cases run once per student, plus an aggregation.

contexts.py turns a class into per-student LabContexts (placement over hosts included);
fanout.py runs a use case per student in parallel; up.py (one launch bound and a capacity check
per host) and status.py (one listing per host, a student x VM matrix) aggregate.
May import: labctl.ops and what it may import.
"""
