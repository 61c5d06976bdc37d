"""The starter lab.yaml files `labctl init` writes (commented, so a newcomer can edit them).

Each starts with a `# yaml-language-server: $schema=` line naming the schema file `init` writes
beside it, so editors with the YAML language server complete and check the fields.
"""

from __future__ import annotations

from typing import Final

SCHEMA_FILE: Final = "lab.schema.json"
_HEAD: Final = f"# yaml-language-server: $schema=./{SCHEMA_FILE}\n"

HELLO: Final = (
    _HEAD
    + """\
# The fastest lab to try labctl with: two app VMs running the built-in `hello` app (it answers
# with its VM's name) behind one nginx load balancer. No git, no build.
#   labctl validate     check this file (every problem with its line)
#   labctl plan         what `up` would do, with the exact multipass commands
#   labctl up           launch, wire nginx and the hosts entry, wait until the domain serves
#   labctl status       every VM's state and whether the domain serves
#   labctl down         delete the VMs and the hosts entry
name: hello               # instance names are <name>-<vm>: hello-app1, hello-lb
domain: hello.lab         # labctl adds "<LB IP> hello.lab" to the hosts file (sudo, or --no-hosts)
image: "24.04"            # an Ubuntu release Multipass knows (multipass find)
defaults:                 # per VM, unless the VM says otherwise
  cpus: 1
  memory: 1G
  disk: 5G
app:
  name: hello
  source:
    builtin: hello        # or  git: https://...  or  path: ./my-app (packed into the user-data)
  port: 3000              # the port the app listens on inside each app VM
vms:
  - name: app1
    roles: [app]          # app: runs the app under pm2
  - name: app2
    roles: [app]
  - name: lb
    roles: [lb]           # lb: nginx, load-balancing the domain across the app VMs
waits:                    # the longest each stage may take before `up` says so
  launch: 10m
  cloud_init: 15m
  serve: 2m
"""
)

SEED: Final = (
    _HEAD
    + """\
# The course's lab: VM `app1` runs dumbflix-frontend under pm2; VM `gateway` runs nginx and a
# second app instance; nginx reverse-proxies and load-balances alvin.xyz across both.
# Put your own name in `name:` and your own domain in `domain:`.
name: alvin
domain: alvin.xyz
aliases: [www.alvin.xyz]  # more names for the same site
image: "24.04"
defaults:
  cpus: 1
  memory: 2G              # dumbflix's production build peaks at about 0.5 GB RSS
  disk: 8G                # node_modules alone is ~350 MB
app:
  name: dumbflix
  source:
    git: https://github.com/dumbwaysdev/dumbflix-frontend
  install: npm ci
  build: npm run build
  start:
    serve: build          # pm2 serve build 3000 --spa: the built files, not the dev server
    spa: true
  port: 3000
  node_version: 20
  env:
    # create-react-app 3.4 (webpack 4) needs the legacy OpenSSL provider on Node >= 17
    NODE_OPTIONS: --openssl-legacy-provider
vms:
  - name: app1
    roles: [app]
  - name: gateway
    roles: [lb, app]      # one VM can be both the load balancer and a backend
lb:
  method: round_robin
  max_fails: 2            # nginx passive health checks: 2 failures ...
  fail_timeout: 5s        # ... take a backend out for 5 s
  keepalive: 16
waits:
  launch: 15m             # npm ci + build on 1 vCPU takes minutes
  cloud_init: 30m
  serve: 3m
manage_hosts: true        # false: labctl prints the hosts line instead of writing it
"""
)

CLASS: Final = (
    _HEAD
    + """\
# A class: one lab per student, each with its own VMs (<name>-<student>-<vm>), load balancer and
# domain. Every command acts on the whole class, or on the students named with --student NAME.
#   labctl up --student alice      one student's lab
#   labctl status                  a student x VM matrix
name: web
class:
  students: [alice, bob]  # or  roster: students.csv  (first column; a file beside lab.yaml)
  domain: "{student}.lab" # {student} becomes each student's name, lower-cased
# hosts:                  # optional: spread the class over Multipass daemons
#   - {name: lab1, address: "10.0.0.5:50051", cpus: 32, memory: 128G, disk: 1000G}
image: "24.04"
defaults:
  cpus: 1
  memory: 1G
  disk: 5G
app:
  name: hello
  source:
    builtin: hello
  port: 3000
vms:
  - name: app1
    roles: [app]
  - name: app2
    roles: [app]
  - name: lb
    roles: [lb]
waits:
  launch: 10m
  cloud_init: 15m
  serve: 2m
"""
)

TEMPLATES: Final = {"hello": HELLO, "seed": SEED, "class": CLASS}
