#!/usr/bin/env bash
# A single-node Garage S3 server for NoKV's tests, on 127.0.0.1, with all
# its data in DIR (sqlite metadata engine, replication factor 1).
#
#   garage-env.sh start DIR    write a config, start the server, apply a
#                              layout, create a bucket and a key, write
#                              DIR/env (NOKV_TEST_S3_* exports) and print it
#   garage-env.sh stop DIR     stop the server (data kept)
#   garage-env.sh restart DIR  start the stopped server again
#   garage-env.sh cleanup DIR  stop it and delete DIR
#
# `garage` must be on PATH (scripts/test.sh installs it when missing).
set -euo pipefail

action="${1:?usage: garage-env.sh start|stop|restart|cleanup DIR}"
dir="${2:?usage: garage-env.sh start|stop|restart|cleanup DIR}"
cfg="$dir/garage.toml"
pidfile="$dir/garage.pid"
GARAGE="${GARAGE:-garage}"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

g() { "$GARAGE" -c "$cfg" "$@"; }

launch() {
    RUST_LOG="${GARAGE_LOG:-warn}" nohup "$GARAGE" -c "$cfg" server >>"$dir/garage.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 200); do
        if g status >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "garage exited during start-up:" >&2
            tail -20 "$dir/garage.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "garage did not answer within 20 s" >&2
    tail -20 "$dir/garage.log" >&2
    return 1
}

wait_s3() {
    local port="$1"
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "garage S3 API on port $port did not open" >&2
    return 1
}

stop() {
    [ -f "$pidfile" ] || return 0
    local pid
    pid="$(cat "$pidfile")"
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

case "$action" in
start)
    mkdir -p "$dir/meta" "$dir/data"
    rpc_port="$(free_port)"
    s3_port="$(free_port)"
    admin_port="$(free_port)"
    cat >"$cfg" <<CFG
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
CFG
    echo "$s3_port" >"$dir/s3_port"
    launch
    node="$(g node id -q 2>/dev/null | cut -d@ -f1)"
    g layout assign -z dc1 -c 1G "$node" >/dev/null
    g layout apply --version 1 >/dev/null
    g bucket create nokv-test >/dev/null
    key_out="$(g key create nokv-test-key)"
    key_id="$(echo "$key_out" | grep -i 'key id' | head -1 | awk '{print $NF}')"
    secret="$(echo "$key_out" | grep -i 'secret key' | head -1 | awk '{print $NF}')"
    if [ -z "$key_id" ] || [ -z "$secret" ]; then
        echo "could not read the key from garage's output:" >&2
        echo "$key_out" >&2
        exit 1
    fi
    g bucket allow --read --write --owner nokv-test --key nokv-test-key >/dev/null
    wait_s3 "$s3_port"
    cat >"$dir/env" <<ENV
export NOKV_TEST_S3_ENDPOINT='http://127.0.0.1:$s3_port'
export NOKV_TEST_S3_REGION='garage'
export NOKV_TEST_S3_BUCKET='nokv-test'
export NOKV_TEST_S3_ACCESS_KEY_ID='$key_id'
export NOKV_TEST_S3_SECRET_ACCESS_KEY='$secret'
ENV
    cat "$dir/env"
    ;;
stop)
    stop
    ;;
restart)
    launch
    wait_s3 "$(cat "$dir/s3_port")"
    ;;
cleanup)
    stop
    rm -rf "$dir"
    ;;
*)
    echo "unknown action $action" >&2
    exit 2
    ;;
esac
