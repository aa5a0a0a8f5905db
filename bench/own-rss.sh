#!/bin/bash
# Peak RSS of a command's own process and of each child it starts, apart (GNU time's %M gives only
# the largest of them). Polls VmHWM (a high-water mark, so a late poll loses nothing but the last
# 50 ms). Prints to stderr. Usage: bench/own-rss.sh COMMAND [ARGS...]
"$@" & pid=$!
declare -A peak name
while kill -0 "$pid" 2>/dev/null; do
  for p in "$pid" $(pgrep -P "$pid"); do
    hwm=$(awk '/^VmHWM/ {print $2}' /proc/$p/status 2>/dev/null) || continue
    [ -n "$hwm" ] || continue
    (( hwm > ${peak[$p]:-0} )) && peak[$p]=$hwm && name[$p]=$(cat /proc/$p/comm 2>/dev/null)
  done
  sleep 0.05
done
wait "$pid"; status=$?
for p in "${!peak[@]}"; do echo "${name[$p]} $((peak[$p] / 1024)) MB" >&2; done
exit $status
