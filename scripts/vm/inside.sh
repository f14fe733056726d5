#!/usr/bin/env bash
# Runs inside the virtual machine of scripts/vm-test.sh, as root, once it is up: the limit and
# containment tests on cgroup v2 as root, as a normal user with a systemd user manager, and as
# a normal user without one; then `forgeai doctor` for each, the status line vm-test.sh reads,
# and power off. Output goes to the second serial port (the unit's standard output).
set -uo pipefail
export TERM=dumb NO_COLOR=1  # the output goes to a serial port, read as a log
read -r up _ </proc/uptime
echo "forgeai-vm: booted in ${up} s (kernel start to the test unit)"
echo "forgeai-vm: kernel $(uname -r); cgroup $(stat -fc %T /sys/fs/cgroup)"
cd /mnt/forgeai
venv=/opt/forgeai-venv
# Under software emulation every process start costs: the tests that concern limits and
# containment, each kind of ending once (the whole battery runs on this machine's host).
containment=tests/sandbox/test_containment.py
supervision=tests/sandbox/test_supervision.py
limits=(tests/sandbox/test_cgroup_limits.py
  "$containment::test_busy_loop_stops_at_the_cpu_limit"
  "$containment::test_memory_bomb_hits_the_memory_limit"
  "$containment::test_fork_bomb_hits_the_process_limit"
  "$containment::test_c_fork_loop_hits_the_process_limit"
  "$containment::test_background_processes_do_not_outlive_the_run"
  "$containment::test_hostile_runs_leave_no_state_on_the_host"
  "$containment::test_program_has_no_privileges_and_a_seccomp_filter"
  "$supervision::test_a_cli_that_dies_leaves_no_sandbox[KILL-True]"
  "$supervision::test_a_hung_forgeai_still_ends_the_run_at_the_wall_clock"
  "$supervision::test_a_killed_server_leaves_no_run_and_no_warm_slot[TERM-disarmed]"
  "$supervision::test_the_next_start_removes_what_a_double_crash_left"
  "tests/cli/test_doctor.py::test_doctor_reports_a_working_sandbox_and_where_limits_come_from")
[ -f .vm-pytest-args ] && mapfile -t limits <.vm-pytest-args
pytest=("$venv/bin/python" -m pytest -q -p no:cacheprovider --color=no -rs --durations=6 "${limits[@]}")
status=0
step() {  # step LABEL COMMAND...: run, time, remember a failure
  local label=$1 begin end
  shift
  echo "== $label"
  begin=$(date +%s%N)
  "$@" || status=1
  end=$(date +%s%N)
  echo "forgeai-vm: $label: $(( (end - begin) / 1000000 )) ms"
}
common=(PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8 TERM=dumb NO_COLOR=1)

step "root, cgroup v2" env "${common[@]}" FORGEAI_EXPECT_LIMITS=cgroup-v2 "${pytest[@]}"
env "${common[@]}" "$venv/bin/forgeai" doctor

# Root where no systemd answers (a container, another init): ForgeAI's own subtree at the top.
step "root, cgroup v2, no systemd bus" env "${common[@]}" FORGEAI_EXPECT_LIMITS=cgroup-v2 \
  FORGEAI_TEST_WITHOUT_SYSTEMD=1 DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider --color=no \
  tests/sandbox/test_cgroup_limits.py

# A normal user whose editor runs under its systemd user manager, kept running by lingering.
loginctl enable-linger tester
for _ in $(seq 300); do [ -S /run/user/1000/bus ] && break; sleep 0.1; done
as_tester=(runuser -u tester -- env XDG_RUNTIME_DIR=/run/user/1000
  DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus
  systemd-run --user --pipe --wait --quiet --collect --working-directory=/mnt/forgeai
  --setenv=PYTHONDONTWRITEBYTECODE=1 --setenv=LANG=C.UTF-8 --setenv=TERM=dumb
  --setenv=NO_COLOR=1)
step "user with a systemd user manager" "${as_tester[@]}" \
  --setenv=FORGEAI_EXPECT_LIMITS=cgroup-v2 "${pytest[@]}"
"${as_tester[@]}" "$venv/bin/forgeai" doctor
# What obtaining the delegated scope costs a ForgeAI process (once, at its first sandbox).
"${as_tester[@]}" "$venv/bin/python" -c '
import time
from forgeai_ls.sandbox.cgroups import detect_cgroups
begin = time.perf_counter()
setup = detect_cgroups()
print(f"forgeai-vm: scope obtained in {(time.perf_counter() - begin) * 1000:.1f} ms: {setup.how}")'

# A normal user with no user manager (no login session, no lingering).
as_nobus=(runuser -u nobus -- env -i PATH=/usr/bin:/bin HOME=/home/nobus "${common[@]}")
step "user without a user manager" "${as_nobus[@]}" FORGEAI_EXPECT_LIMITS=rlimits \
  "${pytest[@]}"
"${as_nobus[@]}" "$venv/bin/forgeai" doctor

echo "forgeai-vm: status $status"
sync
systemctl poweroff --no-block
