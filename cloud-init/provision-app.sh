#!/bin/bash
# labctl: provision the app on an app VM. cloud-init runs it once from runcmd, as root, after the
# packages (nodejs, git) are installed. Every step must succeed: `set -euo pipefail` turns any
# failure into a non-zero exit, which runcmd passes on so cloud-init reports `error`
# (docs/provisioning.md). Never `set -x`: /etc/labctl/app.env may hold secrets (app.secret_env).
#
# Inputs (written by labctl's renderer through cloud-init write_files):
#   /etc/labctl/app.conf            labctl settings, NAME='shell-quoted value' lines (0600)
#   /etc/labctl/app.env             the app's environment, same format (0600)
#   /etc/labctl/ecosystem.config.js the pm2 ecosystem file (0600; holds the env too)
#   /usr/local/lib/labctl/hello/server.js   builtin hello app
#   /usr/local/lib/labctl/app.tar.gz        a `source: path` app, gzipped tar
set -euo pipefail
umask 022
export HOME="${HOME:-/root}" # runcmd may run without HOME; npm wants one

readonly CONF=/etc/labctl/app.conf
readonly APP_ENV=/etc/labctl/app.env
readonly ECOSYSTEM=/etc/labctl/ecosystem.config.js
readonly LIB=/usr/local/lib/labctl
readonly APP_USER=ubuntu
readonly APP_HOME=/home/ubuntu
readonly APP_DIR=/home/ubuntu/app

# shellcheck source=/dev/null
. "$CONF"
: "${LABCTL_APP_NAME:?}" "${LABCTL_PORT:?}" "${LABCTL_SOURCE:?}"

log() { printf 'labctl-provision: %s\n' "$*"; }

# Run argv as the app user with a clean environment (not root's HOME: pm2 would use root's daemon).
as_user() {
    runuser -u "$APP_USER" -- env -i HOME="$APP_HOME" USER="$APP_USER" LOGNAME="$APP_USER" \
        SHELL=/bin/bash LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "$@"
}

# Run one lab.yaml command (install/build) as the app user in APP_DIR with the app's env exported.
# The env file is root-only, so root pipes it in; `eval "$(cat)"` reads the pipe directly
# (re-opening /dev/stdin as the app user would be refused). Never CI=true here: create-react-app builds then fail on warnings.
run_step() {
    local step=$1 command=$2
    log "$step: $command"
    as_user bash -c 'set -euo pipefail; set -a; eval "$(cat)"; set +a; cd "$1"
        exec bash -e -o pipefail -c "$2" </dev/null' "labctl-$step" "$APP_DIR" "$command" <"$APP_ENV"
}

fetch_source() {
    rm -rf "$APP_DIR"
    case "$LABCTL_SOURCE" in
    builtin)
        as_user mkdir -p "$APP_DIR"
        install -o "$APP_USER" -g "$APP_USER" -m 0644 "$LIB/hello/server.js" "$APP_DIR/server.js"
        ;;
    git)
        log "git clone $LABCTL_GIT_URL"
        # `--` so neither the URL nor the ref can be read as an option.
        as_user git clone --quiet -- "$LABCTL_GIT_URL" "$APP_DIR"
        if [ -n "${LABCTL_GIT_REF:-}" ]; then
            log "git checkout $LABCTL_GIT_REF"
            as_user git -C "$APP_DIR" checkout --quiet "$LABCTL_GIT_REF" --
        fi
        ;;
    path)
        as_user mkdir -p "$APP_DIR"
        as_user tar -xzf - -C "$APP_DIR" <"$LIB/app.tar.gz"
        ;;
    *)
        log "unknown source kind: $LABCTL_SOURCE" >&2
        exit 2
        ;;
    esac
}

wait_for_port() {
    local i
    for i in $(seq 1 90); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$LABCTL_PORT") 2>/dev/null; then
            log "app is listening on port $LABCTL_PORT"
            return 0
        fi
        sleep 1
    done
    log "app did not listen on port $LABCTL_PORT within 90 s; last lines of its error log:" >&2
    tail -n 30 "$APP_HOME/.pm2/logs/labctl-app-error.log" >&2 || true
    return 1
}

log "app ${LABCTL_APP_NAME} on VM ${LABCTL_VM:-?}, port ${LABCTL_PORT}; env names: ${LABCTL_ENV_NAMES:-none}"
fetch_source
if [ -n "${LABCTL_INSTALL:-}" ]; then run_step install "$LABCTL_INSTALL"; fi
if [ -n "${LABCTL_BUILD:-}" ]; then run_step build "$LABCTL_BUILD"; fi

# pm2 from npm only when missing, so a re-run (or an image that has it) stays fast.
if ! command -v pm2 >/dev/null 2>&1; then
    log "npm install -g pm2@7"
    npm install -g --no-fund --no-audit pm2@7
fi

install -o "$APP_USER" -g "$APP_USER" -m 0600 "$ECOSYSTEM" "$APP_DIR/ecosystem.config.js"
log "pm2 startOrReload"
runuser -l "$APP_USER" -c 'cd ~/app && pm2 startOrReload ecosystem.config.js && pm2 save'
# As root: writes and enables pm2-ubuntu.service, which resurrects the saved list on boot.
env PATH="$PATH:/usr/bin" pm2 startup systemd -u "$APP_USER" --hp "$APP_HOME"
# Hand the app to that unit: at power-off systemd then runs its `pm2 kill`, which keeps the saved
# list. The daemon started above would get SIGTERM instead and dump its list once more, saving an
# app that exited first as stopped, which the next boot's resurrect would leave down.
runuser -l "$APP_USER" -c 'pm2 kill' >/dev/null
systemctl restart "pm2-$APP_USER"
wait_for_port
log "done"
