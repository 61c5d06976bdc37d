"""project / profile / config trust / remote: what per-student access needs.

A trust token is what LXD 5.0.2 prints (base64 of a JSON with the client name, the server's
certificate fingerprint, its addresses, a secret and an expiry). `remote add NAME TOKEN` finds
the fake server that issued it by address; a restricted token pins the remote to its project.
Through the REST API (`lxc query`, any remote): `POST /1.0/certificates` with `token: true`
starts a token operation (class "token", the secret in its metadata, as LXD 5.0.2 answered),
`/1.0/operations?recursion=1` lists the pending ones, `DELETE /1.0/operations/ID` revokes one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import uuid
from typing import Any, Final

from . import shapes
from .context import Context, key
from .errors import LxcError
from .state import LOCAL

FINGERPRINT_BYTES: Final = 32
NOT_LISTENING: Final = "Can't issue token when server isn't listening on network"
NO_TOKEN: Final = "No certificate add token for member {name} on remote: {remote}"
STATIC_REMOTES: Final = {
    "images": ("https://images.linuxcontainers.org", "simplestreams", True, False),
    "local": ("unix://", "", False, True),
    "ubuntu": ("https://cloud-images.ubuntu.com/releases", "simplestreams", True, True),
    "ubuntu-daily": ("https://cloud-images.ubuntu.com/daily", "simplestreams", True, True),
}


def cmd_project(ctx: Context) -> int:
    verb = ctx.args.command.split()[1]
    target, name = ctx.target(ctx.args.positionals[0] if ctx.args.positionals else "")
    ctx.reach(target)
    with ctx.server(target, write=verb != "list") as server:
        projects = server["projects"]
        if verb == "list":
            rows = [
                {
                    "config": dict(sorted(p["config"].items())),
                    "description": p["description"],
                    "name": n,
                    "used_by": _used_by(server, n),
                }
                for n, p in projects.items()
            ]
            ctx.out(shapes.go_json(rows))
        elif verb == "create":
            if name in projects:
                raise LxcError(
                    f'Error inserting "{name}" into database: The project already exists'
                )  # [I]
            config = {
                "features.images": "true",
                "features.profiles": "true",
                "features.storage.volumes": "true",
            }
            config.update(dict(item.partition("=")[::2] for item in ctx.args.values("config")))
            if config.get("restricted") == "true" and config["features.profiles"] != "true":
                raise LxcError("Projects without their own profiles cannot be restricted")
            projects[name] = {"description": "", "config": config}
            if config["features.profiles"] == "true":
                server["profiles"][key(name, "default")] = {
                    "description": f"Default LXD profile for project {name}",
                    "config": {},
                    "devices": {},
                }
            ctx.out(f"Project {name} created\n")
        else:
            if name not in projects:
                raise LxcError("Project not found")  # [I]
            del projects[name]
            ctx.out(f"Project {name} deleted\n")
    return 0


def _used_by(server: dict[str, Any], project: str) -> list[str]:
    suffix = "" if project == "default" else f"?project={project}"
    return [
        f"/1.0/instances/{i['name']}{suffix}"
        for i in server["instances"].values()
        if i["project"] == project
    ]


def cmd_profile(ctx: Context) -> int:
    words = ctx.args.command.split()
    target, name = ctx.target(ctx.args.positionals[0] if ctx.args.positionals else "")
    ctx.reach(target)
    with ctx.server(target, write=words[1] != "list") as server:
        profiles = server["profiles"]
        ref = key(target.project, name)
        if words[1] == "list":
            prefix = f"{target.project}/"
            rows = [
                {
                    "config": p["config"],
                    "description": p["description"],
                    "devices": dict(sorted(p["devices"].items())),
                    "name": k[len(prefix) :],
                    "used_by": [],
                }
                for k, p in profiles.items()
                if k.startswith(prefix)
            ]
            ctx.out(shapes.go_json(rows))
        elif words[1] == "create":
            profiles[ref] = {"description": "", "config": {}, "devices": {}}
            ctx.out(f"Profile {name} created\n")
        elif ref not in profiles:
            raise LxcError(f'Profile "{name}" not found')  # [I]
        elif words[1] == "delete":
            del profiles[ref]
            ctx.out(f"Profile {name} deleted\n")
        else:  # device add PROFILE DEVICE TYPE key=value...
            device, kind, *settings = ctx.args.positionals[1:]
            entry = {"type": kind, **dict(s.partition("=")[::2] for s in settings)}
            profiles[ref]["devices"][device] = entry
            ctx.out(f"Device {device} added to {name}\n")
    return 0


def cmd_trust(ctx: Context) -> int:
    verb = ctx.args.command.split()[2]
    positionals = ctx.args.positionals
    if verb == "add" and positionals:  # 5.0.2: add's one positional is a certificate file
        raise LxcError(f"open {positionals[0]}: no such file or directory")
    ref = positionals[0] if positionals and verb in ("list", "list-tokens", "remove") else ""
    target, rest = ctx.target(ref)
    ctx.reach(target)
    with ctx.server(target, write=verb not in ("list", "list-tokens")) as server:
        if verb == "list":
            ctx.out(shapes.go_json(server["trust"]))
        elif verb == "list-tokens":
            rows = [
                {"ClientName": t["name"], "Token": _token(server, s, t), "ExpiresAt": ""}
                for s, t in server["tokens"].items()
            ]  # the shape LXD 5.0.2 printed
            ctx.out(shapes.go_json(rows))
        elif verb == "revoke-token":
            name = positionals[-1]
            secret = next((s for s, t in server["tokens"].items() if t["name"] == name), None)
            if secret is None:
                raise LxcError(NO_TOKEN.format(name=name, remote=target.remote))
            del server["tokens"][secret]
            ctx.out(f"Certificate add token for {name} deleted\n")
        elif verb == "remove":
            fingerprint = rest
            kept = [c for c in server["trust"] if not c["fingerprint"].startswith(fingerprint)]
            if len(kept) == len(server["trust"]):
                raise LxcError("Certificate not found")  # [I]
            server["trust"] = kept
        else:
            if not server.get("address"):
                raise LxcError(NOT_LISTENING)
            name = ctx.args.value("name") or "client"
            secret = secrets.token_hex(32)
            token = _token(server, secret, {"name": name})
            projects = [p for p in ctx.args.value("projects").split(",") if p]
            server["tokens"][secret] = {
                "name": name,
                "projects": projects,
                "restricted": ctx.args.has("restricted"),
            }
            ctx.out(f"Client {name} certificate add token:\n{token}\n")
    return 0


def _token(server: dict[str, Any], secret: str, grant: dict[str, Any]) -> str:
    """A join token as LXD 5.0.2 prints it: base64 of a JSON with the client's name, the
    server's certificate fingerprint (the same in every token of a server), its addresses, the
    secret and an expiry."""
    server.setdefault("fingerprint", secrets.token_hex(FINGERPRINT_BYTES))
    body = {
        "client_name": grant["name"],
        "fingerprint": server["fingerprint"],
        "addresses": [server.get("address") or "127.0.0.1:8443"],
        "secret": secret,
        "expires_at": "0001-01-01T00:00:00Z",
    }
    return base64.b64encode(json.dumps(body).encode()).decode()


def operation_id(secret: str) -> str:
    """The id of the token operation that holds `secret` (stable: derived from it)."""
    return str(uuid.UUID(hashlib.sha256(secret.encode()).hexdigest()[:32]))


def _token_operation(server: dict[str, Any], secret: str, grant: dict[str, Any]) -> dict[str, Any]:
    server.setdefault("fingerprint", secrets.token_hex(FINGERPRINT_BYTES))
    request = {
        "certificate": "",
        "name": grant["name"],
        "password": "",
        "projects": grant["projects"],
        "restricted": grant["restricted"],
        "token": True,
        "type": "client",
    }
    return {
        "class": "token",
        "created_at": shapes.NEVER_USED,
        "description": "Executing operation",
        "err": "",
        "id": operation_id(secret),
        "location": "none",
        "may_cancel": True,
        "metadata": {
            "addresses": [server.get("address") or "127.0.0.1:8443"],
            "fingerprint": server["fingerprint"],
            "request": request,
            "secret": secret,
        },
        "resources": None,
        "status": "Running",
        "status_code": 103,
        "updated_at": shapes.NEVER_USED,
    }


def rest_write(server: dict[str, Any], method: str, parts: list[str], data: str) -> Any:
    """`lxc query -X POST|DELETE`: a token request, or the revocation of a pending token."""
    if method == "POST" and parts == ["1.0", "certificates"]:
        body = json.loads(data or "{}")
        if not body.get("token"):
            raise LxcError("labctl never adds a certificate through the API")  # [I]
        if not server.get("address"):
            raise LxcError(NOT_LISTENING)
        secret = secrets.token_hex(32)
        grant = {
            "name": str(body.get("name") or ""),
            "projects": list(body.get("projects") or []),
            "restricted": bool(body.get("restricted")),
        }
        server["tokens"][secret] = grant
        return _token_operation(server, secret, grant)
    if method == "DELETE" and len(parts) == 3 and parts[1] == "operations":
        for secret in list(server["tokens"]):
            if operation_id(secret) == parts[2]:
                del server["tokens"][secret]
                return None
        raise LxcError("Operation not found")
    raise LxcError("not found")  # [I] a route labctl never uses


def rest_operations(server: dict[str, Any]) -> dict[str, Any]:
    """`/1.0/operations?recursion=1`: the pending tokens, by status as LXD groups them."""
    running = [_token_operation(server, s, t) for s, t in server["tokens"].items()]
    return {"failure": [], "running": running, "success": []}


def cmd_remote(ctx: Context) -> int:
    verb = ctx.args.command.split()[1]
    with ctx.store.transaction(write=verb != "list") as root:
        remotes = root["remotes"]
        if verb == "list":
            table = {name: _remote_row(*row) for name, row in STATIC_REMOTES.items()}
            for name, remote in remotes.items():
                if name != LOCAL:
                    address = root["servers"][remote["server"]].get("address", "")
                    table[name] = _remote_row(
                        f"https://{address}",
                        "lxd",
                        False,
                        False,
                        remote.get("project") or "",
                        "tls",
                    )
            ctx.out(shapes.go_json(dict(sorted(table.items()))))
        elif verb == "remove":
            if remotes.pop(ctx.args.positionals[0], None) is None:
                raise LxcError(f'The remote "{ctx.args.positionals[0]}" doesn\'t exist')
        else:
            name, credential = ctx.args.positionals[0], ctx.args.positionals[-1]
            if name in remotes or name in STATIC_REMOTES:
                raise LxcError(f'The remote "{name}" already exists')  # [I]
            remotes[name] = _join(root, credential, ctx.args.value("password"))
    return 0


def _remote_row(
    addr: str, protocol: str, public: bool, static: bool, project: str = "", auth: str = ""
) -> dict[str, Any]:
    return {
        "Addr": addr,
        "AuthType": auth,
        "Domain": "",
        "Project": project,
        "Protocol": protocol,
        "Public": public,
        "Global": False,
        "Static": static,
    }


def _join(root: dict[str, Any], credential: str, password: str) -> dict[str, Any]:
    try:
        token = json.loads(base64.b64decode(credential, validate=True))
    except (binascii.Error, ValueError):
        token = None
    if not isinstance(token, dict):  # not a token: lxc takes it for an address
        host = credential.removeprefix("https://")
        for server_key, server in root["servers"].items():
            if server.get("address") and server["address"] == host:
                if not password or password != server.get("trust_password"):
                    raise LxcError("not authorized")
                return {"server": server_key, "project": "default"}
        raise LxcError(
            f'Get "https://{host}:8443": Unable to connect to: {host}:8443 '
            f"([dial tcp: lookup {host}: no such host])"
        )  # [I]
    for server_key, server in root["servers"].items():
        grant = server["tokens"].pop(token.get("secret", ""), None)
        if grant is not None:
            server["trust"].append(
                {
                    "name": grant["name"],
                    "type": "client",
                    "restricted": grant["restricted"],
                    "projects": grant["projects"],
                    "certificate": "",
                    "fingerprint": secrets.token_hex(FINGERPRINT_BYTES),
                }
            )
            project = grant["projects"][0] if grant["restricted"] and grant["projects"] else ""
            return {
                "server": server_key,
                "project": project or "default",
                "restricted": grant["restricted"],
                "projects": grant["projects"],
                "client": grant["name"],
            }
    raise LxcError("not authorized")
