#!/usr/bin/env bash
# MongoDB's entrypoint (docker-compose.yml's mongo service), run as root before the image's own: makes
# the replica set's keyfile on the first start, kept in the mongo-config volume, readable by mongod
# alone. Authentication between the members of a replica set needs one; the image's entrypoint then
# creates the root user and runs /docker-entrypoint-initdb.d on the first start, and starts mongod.
set -eu

keyfile=/data/configdb/keyfile
if [ ! -s "$keyfile" ]; then
    (umask 077 && tr -dc 'A-Za-z0-9' </dev/urandom | head -c 756 >"$keyfile.new")
    mv "$keyfile.new" "$keyfile"
fi
chown mongodb:mongodb "$keyfile"
chmod 400 "$keyfile"

exec docker-entrypoint.sh "$@"
