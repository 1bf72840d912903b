# Process helpers the daemon scripts beside this file share (sourced, not run).

# 0 when pid runs. A zombie counts as gone: an exited daemon was re-parented to PID 1, which
# may reap it only later (on the dev machine PID 1 reaps about once a second).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

wait_gone() { # pid seconds
  local pid=$1 n=$(($2 * 10))
  while [ $n -gt 0 ] && alive "$pid"; do sleep 0.1; n=$((n - 1)); done
  ! alive "$pid"
}
