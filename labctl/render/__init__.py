"""Pure rendering: the lab model in, cloud-init user-data (built as data, dumped as YAML) out.

Owns: the user-data of each VM (userdata.py), the nginx site (nginx.py), the app's pm2 ecosystem
and packing (app.py), and the static files shipped to the VMs (assets.py reads cloud-init/).
May import: labctl.errors, labctl.model. No clock, no environment, no processes.
"""
