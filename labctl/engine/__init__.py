"""The engine layer: what runs lab instances (Multipass VMs today), behind one interface.

`base.py` holds the neutral types and protocols the use cases speak; each engine is a package
below this one (`multipass/`) and the only code that runs its CLI; `registry.py` opens one by name;
`recording.py` is an engine that records instead of acting (what `labctl plan` shows).
"""
