"""This machine: what labctl reads and writes outside Multipass.

Owns: the hosts file's managed block (hostsfile.py) and its privileged write through sudo
(privileged.py), host CPU/memory/disk (resources.py), the per-lab state dir and lock (state.py),
and HTTP/DNS probes with every retry and wait (probes.py, the only tenacity user), every HTTP
request to a VM bounded in time and bytes (bounded_http.py) and the status agent's client
(agent.py).
May import: labctl.errors, labctl.model.
"""
