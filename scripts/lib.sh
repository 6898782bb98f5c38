# Shared set-up for scripts/test and scripts/bench: installs what is missing
# on a Debian/Ubuntu machine and starts a throwaway PostgreSQL.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages among "$@" that are not installed yet.
ensure_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        ensure_packages curl ca-certificates
        log "installing Rust with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
}

# Runs "$@" as the postgres user when we are root (PostgreSQL refuses root).
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Starts a PostgreSQL cluster in a temporary folder on a free port of
# 127.0.0.1 and exports TAPKIOSK_TEST_POSTGRES (an admin URL) and
# TAPKIOSK_TEST_PG_BIN. The cluster is removed when the script exits.
start_postgres() {
    ensure_packages postgresql
    PG_BIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
    PG_DATA=$(mktemp -d /tmp/tapkiosk-pg.XXXXXX)
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DATA"
    as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U tapkiosk --auth=trust --no-sync -E UTF8 >/dev/null
    trap stop_postgres EXIT
    local port
    for _ in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 30000))
        if as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -l "$PG_DATA/server.log" \
            -o "-p $port -k $PG_DATA -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
            start >/dev/null; then
            export TAPKIOSK_TEST_POSTGRES="postgres://tapkiosk@127.0.0.1:$port/postgres"
            export TAPKIOSK_TEST_PG_BIN="$PG_BIN"
            log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
            return 0
        fi
    done
    echo "could not start PostgreSQL; see $PG_DATA/server.log" >&2
    return 1
}

stop_postgres() {
    if [ -n "${PG_DATA:-}" ] && [ -d "$PG_DATA" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DATA"
    fi
}
