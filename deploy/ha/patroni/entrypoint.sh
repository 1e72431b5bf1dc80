#!/bin/sh
# Hand the passwords (Docker secret files) to Patroni, which reads them from its environment
# only, then run Patroni as PID 1 of the container. The values never appear in the container's
# configuration (docker inspect) nor on a command line.
set -eu
read_secret() { # read_secret FILE: the first line of a secret file
	[ -r "$1" ] || { echo "patroni-entrypoint: cannot read secret $1" >&2; exit 1; }
	head -n 1 "$1"
}
PATRONI_SUPERUSER_PASSWORD="$(read_secret "${SUPERUSER_PASSWORD_FILE:-/run/secrets/db_password}")"
PATRONI_REPLICATION_PASSWORD="$(read_secret "${REPLICATION_PASSWORD_FILE:-/run/secrets/replication_password}")"
export PATRONI_SUPERUSER_PASSWORD PATRONI_REPLICATION_PASSWORD
exec patroni /etc/patroni/patroni.yml
