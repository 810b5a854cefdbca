# Sourced by the bench-*.sh scripts: `side TAG COMMAND...` runs one side of a comparison and sets SIDE_OK
# to 1 or 0. When the command fails it prints "TAG: FAILED: <the last line of its stderr>" on the script's
# own stdout (fd 3, so a redirection of the command's output does not swallow it), where
# scripts/bench-vs-olmo-core.sh finds it and puts it into that side's cell of the table; the script goes on
# with the other side and exits 1 at its end (`bench_exit`).
BENCH_FAILED=0
SIDE_OK=1
exec 3>&1

side() {
    local tag=$1 err why status=0
    shift
    err=$(mktemp)
    "$@" 2>"$err" || status=$?
    SIDE_OK=1
    if [ "$status" -ne 0 ]; then
        why=$(grep -v '^[[:space:]]*$' "$err" | tail -1)
        echo "$tag: FAILED: ${why:-exit status $status, nothing on stderr}" >&3
        BENCH_FAILED=1
        SIDE_OK=0
    fi
    rm -f "$err"
}

bench_exit() {
    exit "$BENCH_FAILED"
}
