#!/usr/bin/env bash
# Entrypoint of rates-local/postgres:13-bullseye, the local stand-in for the
# official postgres:13.5 image (see ../README.md). It mirrors the parts of the
# official docker-entrypoint.sh that this project relies on:
#   POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE, POSTGRES_USER (default postgres),
#   POSTGRES_DB (default = user), POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD,
#   PGDATA, /docker-entrypoint-initdb.d/*.{sh,sql,sql.gz}, and
#   "docker run IMAGE -c key=value" being forwarded to postgres.
# Finally it execs postgres so that postgres is PID 1 and receives the stop
# signal directly (STOPSIGNAL SIGINT = fast shutdown).
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# file_env VAR [DEFAULT]: VAR may also be given as the contents of the file
# named by VAR_FILE (docker/compose secrets), like the official image.
file_env() {
	local var="$1" file_var="${1}_FILE" def="${2:-}" val
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		die "both $var and $file_var are set (they are mutually exclusive)"
	fi
	val="$def"
	if [ -n "${!var:-}" ]; then
		val="${!var}"
	elif [ -n "${!file_var:-}" ]; then
		[ -r "${!file_var}" ] || die "$file_var=${!file_var}: file not readable by uid $(id -u)"
		val="$(< "${!file_var}")"
	fi
	export "$var"="$val"
	unset "$file_var"
}

init_database() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	local auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

	if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
		cat >&2 <<-'MSG'
		Error: Database is uninitialized and superuser password is not specified.
		       Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty value,
		       e.g. "-e POSTGRES_PASSWORD=secret" or POSTGRES_PASSWORD in .env for compose.
		       To allow all connections without a password (NOT recommended) use
		       POSTGRES_HOST_AUTH_METHOD=trust.
		MSG
		exit 1
	fi
	if [ "$auth" = trust ]; then
		log "WARNING: POSTGRES_HOST_AUTH_METHOD=trust: every TCP client may connect as any role without a password"
	fi

	log "initializing database cluster in $PGDATA (user=$POSTGRES_USER, db=$POSTGRES_DB)"
	# --auth-host=scram-sha-256 also makes initdb write password_encryption =
	# scram-sha-256 into postgresql.conf *before* it hashes the --pwfile password.
	local -a initdb_args=(--username="$POSTGRES_USER" --auth-local=trust --auth-host=scram-sha-256)
	# shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a word list on purpose
	if [ -n "$POSTGRES_PASSWORD" ]; then
		# the password reaches initdb through a pipe, never argv or a file
		initdb "${initdb_args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS
	else
		initdb "${initdb_args[@]}" $POSTGRES_INITDB_ARGS
	fi

	# Unix socket inside the container: trust (like the official image).
	# TCP from anywhere: password (SCRAM) unless POSTGRES_HOST_AUTH_METHOD says otherwise.
	cat > "$PGDATA/pg_hba.conf" <<-HBA
	# written by docker-entrypoint.sh (rates-local/postgres)
	# TYPE  DATABASE  USER  ADDRESS  METHOD
	local   all       all            trust
	host    all       all   all      $auth
	HBA

	# Temporary server, reachable only through the unix socket, for the setup SQL.
	# User args ("-c shared_buffers=...") are passed too, like the official image.
	log "starting temporary server for setup"
	set -- "$@" -c listen_addresses= -p 5432
	PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -w -t 60 -o "$(printf '%q ' "$@")" start

	local -a psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	"${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<-'SQL'
	SELECT format('CREATE DATABASE %I', :'db')
	WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
	SQL

	local f
	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] || continue
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then log "running $f"; "$f"
				else log "sourcing $f"; # shellcheck disable=SC1090
					. "$f"; fi ;;
			*.sql)    log "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
			*.sql.gz) log "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
			*)        log "ignoring $f" ;;
		esac
	done

	pg_ctl -D "$PGDATA" -m fast -w stop
	log "initialization complete; ready for start up"
}

# "docker run IMAGE -c foo=bar" -> "postgres -c foo=bar" (official behaviour)
if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" = postgres ]; then
	if [ "$(id -u)" = 0 ]; then
		# Only when started with "--user root": fix ownership (e.g. of a bind
		# mount) and drop privileges; the image itself runs as USER postgres.
		mkdir -p "$PGDATA" /var/run/postgresql
		chown -R postgres:postgres "$PGDATA" /var/run/postgresql
		chmod 700 "$PGDATA"
		exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
	fi

	mkdir -p "$PGDATA" 2>/dev/null || true
	if [ ! -w "$PGDATA" ]; then
		die "PGDATA=$PGDATA is not writable by uid $(id -u) ($(id -un)); it is owned by $(stat -c %u:%g "$PGDATA" 2>/dev/null || echo '?'). Use a named volume, or chown the bind-mounted directory to $(id -u):$(id -g)."
	fi
	chmod 700 "$PGDATA" 2>/dev/null || true

	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		shift
		init_database "$@"
		set -- postgres "$@"
	else
		log "PostgreSQL data directory $PGDATA already initialized; skipping initdb"
	fi
	unset POSTGRES_PASSWORD
fi

exec "$@"
