#!/usr/bin/env bash
# scripts/soak.sh - the soak test of issue 5 (docs/robustness.md section 6).
#
#   scripts/soak.sh [--duration 120] [--guests 4] [--queues 2] [--kill-every 3..8]
#                   [--build-dir DIR] [--rate PPS] [--seed N] [--json [FILE]] [--keep]
#                   [--rss-bound-mib M] [--fd-bound N]
#
# One `uvmbus host` (a NIC with --queues channels per guest, every NIC a port of switch sw0) and
# --guests `uvmbus guest` processes in pairs (g1<->g2, g3<->g4, ...), each running
# `--traffic peer=<its pair's MAC>,duration=...` (continuous, content-checked test frames both
# ways, tools/traffic.h). Every --kill-every seconds (uniformly random in the range) a random
# guest gets SIGKILL; once the host has released it (it is gone from `uvmbus ls --json`) it is
# started again under the same name (same MAC: a new *incarnation*). At --duration the kills stop,
# every guest is made to be up with a session to its peer, the host's RSS and fd count are read
# again, all guests get SIGTERM together (they drain: stop sending, wait until their frames are
# acknowledged and the peer's announced final count has arrived, then print one JSON report), and
# the host gets SIGTERM.
#
# Checks (each a line of the summary; exit 0 only if all pass):
#   processes     every killed guest exited by SIGKILL (137) and nothing else; every final guest
#                 and the host exited 0; no core file in the run directory.
#   sanitizers    no AddressSanitizer / LeakSanitizer / UndefinedBehaviorSanitizer /
#                 ThreadSanitizer report in any process's stderr log.
#   accounting    exact frame accounting (below): nothing lost in a session whose two ends
#                 survived, no bad (corrupt) or duplicated frame anywhere, every final guest drained.
#   host memory   host RssAnon (private memory: heap, stacks) at the end minus at the start (after
#                 warm-up, same number of guests connected and sending) <= --rss-bound-mib;
#                 VmRSS and RssShmem (the guests' RAM the host maps) are printed too.
#   host fds      open descriptors (/proc/<pid>/fd) at the end minus at the start <= --fd-bound.
#   host release  after each kill the host dropped the guest (ls) within 15 s, and the new
#                 incarnation was offered its NIC again (it opened a session).
#
# Frame accounting. Every traffic run draws a random 32-bit nonce (its incarnation) and prints it
# first (`traffic: incarnation 1a2b3c4d`), so a guest killed before it could report is still
# identified. Frames travel in *sessions*: a sender incarnation to one receiver incarnation, with
# sequence numbers from 0; the receiver counts what arrives per sender nonce; a sender never has
# more than `window` frames unacknowledged in a session. For each session the script finds both
# ends' reports and classifies every frame:
#   sender survived, receiver survived:  sent = received + lost_live            (lost_live must be 0)
#   sender survived, receiver killed:    sent = acked_by_killed + in_flight_to_killed
#                 (acked: the killed receiver had them, intact, it said so before it died;
#                  in flight: sent but not acknowledged when the receiver died: in its rings or
#                  receive buffers, in the switch port queue that was torn down, flooded to other
#                  ports after its MAC left the switch (counted `foreign` there), or on their way;
#                  attributed to the killed incarnation, at most one window per session)
#   sender killed, receiver survived:    high = received + in_flight_from_killed
#                 (high = highest sequence number received + 1; the holes below it were frames the
#                  killed sender had handed to netvsc that did not make it out of its rings)
#   both killed:  nothing observable (no report at either end); not counted.
# So the totals satisfy, exactly:
#   sent = received + acked_by_killed + in_flight_to_killed + in_flight_from_killed + lost_live
# with sent = sum of the survivors' session counts + the `high` of every session from a killed
# sender. The host's own named drop counters (netvsp: rx_ring_full, rx_no_buffer, tx_backend_busy,
# ...; from `uvmbus stats --json` just before the final SIGTERM, and the victim's just before each
# kill) are printed next to them; lost_live must be 0, or else be covered by those counters (then
# the check still fails, listing them: a windowed sender should never overflow a queue).
# `stale` (frames of a session whose receiver incarnation had already been replaced), `foreign`
# (flooded copies) and `out_of_window` are counted by the receivers and printed; they are copies or
# stragglers of frames already in the in-flight figures, not extra frames.
#
# Builds: the binary is DIR/src/tools/uvmbus; default build/asan (the asan preset), else
# build/release. Under ASan the quarantine is capped (ASAN_OPTIONS quarantine_size_mb=4) so that
# RSS measures leaks rather than the allocator's delay line.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=120
GUESTS=4
QUEUES=2
KILL_MIN=3
KILL_MAX=8
BUILD_DIR=""
RATE=4000
SEED=""
JSON=""
JSON_FILE=""
KEEP=0
RSS_BOUND_MIB=""
FD_BOUND=4

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die_usage() { echo "soak.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION=${2:?}; shift 2 ;;
    --guests) GUESTS=${2:?}; shift 2 ;;
    --queues) QUEUES=${2:?}; shift 2 ;;
    --kill-every)
      [[ ${2:-} =~ ^([0-9]+)\.\.([0-9]+)$ ]] || die_usage "--kill-every MIN..MAX (seconds)"
      KILL_MIN=${BASH_REMATCH[1]}; KILL_MAX=${BASH_REMATCH[2]}; shift 2 ;;
    --build-dir) BUILD_DIR=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --seed) SEED=${2:?}; shift 2 ;;
    --json)
      JSON=1
      if [[ $# -ge 2 && ${2:0:2} != "--" ]]; then JSON_FILE=$2; shift; fi
      shift ;;
    --keep) KEEP=1; shift ;;
    --rss-bound-mib) RSS_BOUND_MIB=${2:?}; shift 2 ;;
    --fd-bound) FD_BOUND=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    *) die_usage "unknown option $1 (see --help)" ;;
  esac
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 10 ]] || die_usage "--duration: seconds >= 10"
[[ $GUESTS =~ ^[0-9]+$ && $GUESTS -ge 2 && $((GUESTS % 2)) -eq 0 && $GUESTS -le 64 ]] ||
  die_usage "--guests: an even number 2..64 (guests talk in pairs)"
[[ $QUEUES =~ ^[0-9]+$ && $QUEUES -ge 1 && $QUEUES -le 64 ]] || die_usage "--queues: 1..64"
[[ $KILL_MIN -ge 1 && $KILL_MAX -ge $KILL_MIN ]] || die_usage "--kill-every: 1 <= MIN <= MAX"
[[ $RATE =~ ^[0-9]+$ ]] || die_usage "--rate: frames per second per guest (0: unlimited)"
[[ $FD_BOUND =~ ^[0-9]+$ ]] || die_usage "--fd-bound: a count"

if [[ -z $BUILD_DIR ]]; then
  for d in "$ROOT/build/asan" "$ROOT/build/release"; do
    if [[ -x $d/src/tools/uvmbus ]]; then BUILD_DIR=$d; break; fi
  done
  [[ -n $BUILD_DIR ]] || { echo "soak.sh: no build/asan or build/release uvmbus (cmake --preset asan && cmake --build --preset asan)" >&2; exit 2; }
fi
BUILD_DIR=$(cd "$BUILD_DIR" 2>/dev/null && pwd) || die_usage "--build-dir: no such directory"
UVMBUS=$BUILD_DIR/src/tools/uvmbus
[[ -x $UVMBUS ]] || die_usage "no executable $UVMBUS"
# The binary must know --traffic duration=S (tools/traffic.h): a parse error is a usage exit (2);
# a binary that knows it only fails to find a host (3).
rc=0; "$UVMBUS" guest --socket /nonexistent/uvmbus-soak-probe --log-level off \
  --traffic peer=00:15:5d:00:00:01,duration=1 > /dev/null 2>&1 || rc=$?
[[ $rc -eq 3 ]] || { echo "soak.sh: $UVMBUS does not support --traffic duration= (exit $rc): rebuild it" >&2; exit 2; }
SANITIZED=0
# (gcc links libasan dynamically; a static runtime shows in the symbol table. No grep -q: it
# would end the pipe early, and pipefail would call that a failure.)
if ldd "$UVMBUS" 2>/dev/null | grep -c libasan > /dev/null ||
   [[ $(nm "$UVMBUS" 2>/dev/null | grep -c __asan_init) -gt 0 ]]; then SANITIZED=1; fi
# ASan: the 4 MiB quarantine plus the allocator's size-class caches, which keep the pages of
# each torn-down guest's buffers (switch port rings, netvsp state) until the next guest reuses
# them: measured to plateau at ~13 MiB within ~6 kills and stay there.
if [[ -z $RSS_BOUND_MIB ]]; then RSS_BOUND_MIB=$(( SANITIZED ? 24 : 8 )); fi
[[ -z $SEED ]] && SEED=$(( $(date +%s) % 32768 ))
RANDOM=$SEED

RUN=$(mktemp -d "${TMPDIR:-/tmp}/uvmbus-soak.XXXXXX")
SOCK=$RUN/vmbus.sock
cd "$RUN"
ulimit -c unlimited 2>/dev/null || true
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:quarantine_size_mb=4:abort_on_error=1:disable_coredump=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"
START_NS=$(date +%s%N)
log() { local t=$(( ($(date +%s%N) - START_NS) / 100000000 )); printf '[soak %4d.%ds] %s\n' $((t / 10)) $((t % 10)) "$*" >&2; }

mac_of() { printf '00:15:5d:5a:00:%02x' "$1"; }
peer_of() { if (( $1 % 2 == 1 )); then echo $(( $1 + 1 )); else echo $(( $1 - 1 )); fi; }

HOST_PID=""
declare -A PID INC
EVENTS=$RUN/events.tsv   # guest  incarnation  pid  how-it-ended  exit-code
: > "$EVENTS"

cleanup() {
  local p
  for p in "${PID[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  [[ -n $HOST_PID ]] && kill -KILL "$HOST_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ $KEEP -eq 0 && ${SOAK_PASSED:-0} -eq 1 ]]; then rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'echo "soak.sh: interrupted" >&2; exit 130' INT TERM

# ---- host ----
nic_flags=()
for i in $(seq 1 "$GUESTS"); do
  nic_flags+=(--nic "guest=g$i,mac=$(mac_of "$i"),queues=$QUEUES,backend=switch:sw0")
done
"$UVMBUS" host --socket "$SOCK" --heartbeat-interval 1000 "${nic_flags[@]}" --log-level info \
  > "$RUN/host.out" 2> "$RUN/host.err" &
HOST_PID=$!
for _ in $(seq 1 300); do
  "$UVMBUS" ls --socket "$SOCK" --json > /dev/null 2>&1 && break
  kill -0 "$HOST_PID" 2>/dev/null || { echo "soak.sh: the host died at start (see $RUN/host.err)" >&2; exit 1; }
  sleep 0.1
done
log "host pid $HOST_PID on $SOCK; $GUESTS guests x $QUEUES queues; binary $UVMBUS (sanitized=$SANITIZED); seed $SEED; run dir $RUN"

# ---- guests ----
start_guest() {  # $1 = guest index
  local i=$1 n=$(( ${INC[$1]:-0} + 1 ))
  INC[$i]=$n
  local spec="peer=$(mac_of "$(peer_of "$i")"),duration=$(( DURATION + 3600 )),sizes=60-MTU,flows=64"
  [[ $RATE -gt 0 ]] && spec+=",rate=$RATE"
  "$UVMBUS" guest --socket "$SOCK" --name "g$i" --cpus "$QUEUES" --ram 64 --traffic "$spec" \
    --log-level warn > "$RUN/g$i.$n.out" 2> "$RUN/g$i.$n.err" &
  PID[$i]=$!
}
# A guest incarnation is in business once it has a session with its peer's incarnation.
has_session() { grep -q '^traffic: session' "$RUN/g$1.${INC[$1]}.out" 2>/dev/null; }
wait_sessions() {  # every guest; $1 = timeout s
  local deadline=$(( $(date +%s) + $1 )) i ok
  while :; do
    ok=1
    for i in $(seq 1 "$GUESTS"); do has_session "$i" || { ok=0; break; }; done
    [[ $ok -eq 1 ]] && return 0
    [[ $(date +%s) -ge $deadline ]] && return 1
    sleep 0.2
  done
}
listed() {  # is guest g$1 in the host's ls document?
  "$UVMBUS" ls --socket "$SOCK" --json 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if any(g.get("name")==sys.argv[1] for g in d.get("guests",[])) else 1)' "g$1"
}
host_proc() {  # prints "rss_kib anon_kib shmem_kib fds"
  local rss anon shm
  rss=$(awk '/^VmRSS:/{print $2}' "/proc/$HOST_PID/status")
  anon=$(awk '/^RssAnon:/{print $2}' "/proc/$HOST_PID/status")
  shm=$(awk '/^RssShmem:/{print $2}' "/proc/$HOST_PID/status")
  echo "$rss $anon $shm $(ls "/proc/$HOST_PID/fd" | wc -l)"
}

FAILURES=()
for i in $(seq 1 "$GUESTS"); do start_guest "$i"; done
wait_sessions 60 || FAILURES+=("start: not every guest opened a traffic session within 60 s")
sleep 3  # warm-up: buffers, rings, caches and the allocator reach their working size
read -r RSS0 ANON0 SHM0 FD0 < <(host_proc)
log "warm: host VmRSS ${RSS0} KiB (anon ${ANON0}, shmem ${SHM0}), ${FD0} fds"

# ---- kill loop ----
KILLS=0
RELEASE_MAX_MS=0
END=$(( $(date +%s) + DURATION ))
while :; do
  pause=$(( KILL_MIN * 10 + RANDOM % ((KILL_MAX - KILL_MIN) * 10 + 1) ))  # tenths of a second
  now=$(date +%s)
  # No kill in the last 10 s: every pair must be back in business before the final drain.
  (( now * 10 + pause >= (END - 10) * 10 )) && break
  sleep "$((pause / 10)).$((pause % 10))"
  v=$(( RANDOM % GUESTS + 1 ))
  "$UVMBUS" stats --socket "$SOCK" --json > "$RUN/stats.kill$((KILLS + 1)).json" 2>/dev/null || true
  kill -KILL "${PID[$v]}"
  rc=0; { wait "${PID[$v]}"; } 2>/dev/null || rc=$?
  printf 'g%s\t%s\t%s\tkilled\t%s\n' "$v" "${INC[$v]}" "${PID[$v]}" "$rc" >> "$EVENTS"
  KILLS=$((KILLS + 1))
  t0=$(date +%s%N)
  released=0
  for _ in $(seq 1 150); do
    if ! listed "$v"; then released=1; break; fi
    sleep 0.1
  done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  (( ms > RELEASE_MAX_MS )) && RELEASE_MAX_MS=$ms
  if [[ $released -eq 0 ]]; then
    FAILURES+=("host release: g$v (pid ${PID[$v]}) still listed 15 s after SIGKILL")
  fi
  read -r r a sh f < <(host_proc)
  printf '%s\t%s\t%s\t%s\t%s\n' "$KILLS" "$r" "$a" "$sh" "$f" >> "$RUN/host-samples.tsv"
  log "kill #$KILLS: g$v incarnation ${INC[$v]} (pid ${PID[$v]}, exit $rc), released in ${ms} ms; host anon ${a} KiB, ${f} fds"
  start_guest "$v"
done
# Let the last restarts come up, then run to the end.
wait_sessions 60 || FAILURES+=("end: not every guest had a traffic session 60 s after the last restart")
while [[ $(date +%s) -lt $END ]]; do sleep 0.5; done
sleep 1
read -r RSS1 ANON1 SHM1 FD1 < <(host_proc)
log "end: host VmRSS ${RSS1} KiB (anon ${ANON1}, shmem ${SHM1}), ${FD1} fds; $KILLS kills"
"$UVMBUS" stats --socket "$SOCK" --json > "$RUN/stats.final.json" 2>/dev/null || echo '{}' > "$RUN/stats.final.json"

# ---- orderly end: all guests drain together, then the host ----
for i in $(seq 1 "$GUESTS"); do kill -TERM "${PID[$i]}"; done
for i in $(seq 1 "$GUESTS"); do
  rc=0; wait "${PID[$i]}" || rc=$?
  printf 'g%s\t%s\t%s\tterminated\t%s\n' "$i" "${INC[$i]}" "${PID[$i]}" "$rc" >> "$EVENTS"
done
PID=()
kill -TERM "$HOST_PID"
HOST_RC=0; wait "$HOST_PID" || HOST_RC=$?
HOST_PID_WAS=$HOST_PID
HOST_PID=""
log "stopped: host exit $HOST_RC"

# ---- analysis ----
SUMMARY_JSON=$RUN/summary.json
set +e
# The table goes to stdout, or to stderr when the JSON document takes stdout.
if [[ -n $JSON && -z $JSON_FILE ]]; then exec 3>&2; else exec 3>&1; fi
python3 - "$RUN" "$EVENTS" "$HOST_RC" "$RSS0 $ANON0 $SHM0 $FD0" "$RSS1 $ANON1 $SHM1 $FD1" \
  "$RSS_BOUND_MIB" "$FD_BOUND" "$KILLS" "$RELEASE_MAX_MS" "$DURATION" "$GUESTS" "$QUEUES" \
  "$SEED" "$UVMBUS" "$SANITIZED" "$SUMMARY_JSON" "$(printf '%s\n' "${FAILURES[@]+"${FAILURES[@]}"}")" >&3 <<'PY'
import glob, json, os, re, sys
(run, events, host_rc, start, end, rss_bound, fd_bound, kills, release_ms, duration, guests,
 queues, seed, binary, sanitized, out_json, pre_failures) = sys.argv[1:18]
failures = [l for l in pre_failures.split("\n") if l]
rss0, anon0, shm0, fd0 = map(int, start.split())
rss1, anon1, shm1, fd1 = map(int, end.split())

# Incarnations: guest, index, pid, how it ended, exit code, nonce, report.
incs = []
for line in open(events):
    g, n, pid, how, rc = line.rstrip("\n").split("\t")
    out = os.path.join(run, f"{g}.{n}.out")
    text = open(out, errors="replace").read() if os.path.exists(out) else ""
    m = re.search(r"^traffic: incarnation ([0-9a-f]{8})$", text, re.M)
    report = None
    for l in text.splitlines():
        if l.startswith('{"traffic"'):
            report = json.loads(l)["traffic"]
    incs.append(dict(guest=g, n=int(n), pid=int(pid), how=how, rc=int(rc),
                     nonce=int(m.group(1), 16) if m else None, report=report, out=out))
by_nonce = {i["nonce"]: i for i in incs if i["nonce"] is not None}

# 1. processes
for i in incs:
    want = 137 if i["how"] == "killed" else 0
    if i["rc"] != want:
        failures.append(f"process: {i['guest']} incarnation {i['n']} (pid {i['pid']}) exited "
                        f"{i['rc']}, expected {want}")
    if i["how"] == "terminated" and i["report"] is None:
        failures.append(f"process: {i['guest']} incarnation {i['n']} printed no traffic report")
if int(host_rc) != 0:
    failures.append(f"process: the host exited {host_rc}, expected 0")
cores = [p for p in glob.glob(os.path.join(run, "core*"))]
if cores:
    failures.append(f"process: core files {cores}")

# 2. sanitizers
pat = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|"
                 r"WARNING: ThreadSanitizer|SUMMARY: (Address|Undefined|Thread|Leak)Sanitizer|"
                 r"Sanitizer:DEADLYSIGNAL")
san = []
for p in sorted(glob.glob(os.path.join(run, "*.err"))):
    for l in open(p, errors="replace"):
        if pat.search(l):
            san.append(f"{os.path.basename(p)}: {l.strip()}")
            break
for s in san:
    failures.append(f"sanitizer: {s}")

# 3. accounting
acc = dict(sent=0, sent_by_survivors=0, sent_by_killed_seen=0, received=0,
           received_from_killed=0, acked_by_killed=0, in_flight_to_killed=0,
           in_flight_from_killed=0, lost_live=0, bad=0, duplicates=0, stale=0, foreign=0,
           out_of_window=0, sessions_live=0, sessions_to_killed=0, sessions_from_killed=0)
undrained = []
for i in incs:
    r = i["report"]
    if r is None:
        continue
    for k in ("bad", "duplicates", "stale", "foreign", "out_of_window"):
        acc[k] += r.get(k, 0)
    if i["how"] == "terminated" and not r.get("drained", False):
        undrained.append(f"{i['guest']}: {r.get('error', '')}")
    for t in r.get("tx_sessions", []):
        acc["sent"] += t["sent"]
        acc["sent_by_survivors"] += t["sent"]
        peer = by_nonce.get(t["peer"])
        if peer is None:
            failures.append(f"accounting: {i['guest']} sent to unknown incarnation {t['peer']:08x}")
            continue
        if peer["report"] is not None:  # both ends reported
            acc["sessions_live"] += 1
            rx = next((s for s in peer["report"].get("rx_sessions", [])
                       if s["peer"] == r["nonce"]), None)
            got = rx["received"] if rx else 0
            acc["received"] += got
            if got != t["sent"]:
                acc["lost_live"] += t["sent"] - got
                failures.append(f"accounting: {i['guest']} -> {peer['guest']} (live session): "
                                f"sent {t['sent']}, received {got}")
        else:
            acc["sessions_to_killed"] += 1
            acc["acked_by_killed"] += t["acked"]
            acc["in_flight_to_killed"] += t["sent"] - t["acked"]
    for s in r.get("rx_sessions", []):
        sender = by_nonce.get(s["peer"])
        if sender is None:
            failures.append(f"accounting: {i['guest']} received from unknown incarnation {s['peer']:08x}")
            continue
        if sender["report"] is None:  # the sender was killed: only the receiver knows
            acc["sessions_from_killed"] += 1
            acc["sent"] += s["high"]
            acc["sent_by_killed_seen"] += s["high"]
            acc["received"] += s["received"]
            acc["received_from_killed"] += s["received"]
            acc["in_flight_from_killed"] += s["high"] - s["received"]
for k in ("bad", "duplicates"):
    if acc[k]:
        failures.append(f"accounting: {acc[k]} {k} frames")
for u in undrained:
    failures.append(f"accounting: final drain incomplete: {u}")
balance = (acc["received"] + acc["acked_by_killed"] + acc["in_flight_to_killed"] +
           acc["in_flight_from_killed"] + acc["lost_live"])
if balance != acc["sent"]:
    failures.append(f"accounting: sent {acc['sent']} != classified {balance}")

# Host named counters: the survivors' at the end, each victim's just before its kill.
traffic_names = re.compile(r"^(tx|rx)_queue_\d+_(packets|bytes)$")
informational = {"rx_completions", "rx_steered", "send_tables_sent", "wakeups",
                 "link_indications", "tx_completions_deferred", "tx_vlan_tagged"}
host_drops = {}
def add_counters(doc, only=None):
    for g, nics in (doc or {}).items():
        if only is not None and g != only:
            continue
        for nic in nics.values():
            for k, v in nic.items():
                if isinstance(v, int) and v and not traffic_names.match(k) and k not in informational:
                    host_drops[k] = host_drops.get(k, 0) + v
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return {}
add_counters(load(os.path.join(run, "stats.final.json")))
killed = [i for i in incs if i["how"] == "killed"]
for k, i in enumerate(killed, 1):
    add_counters(load(os.path.join(run, f"stats.kill{k}.json")), only=i["guest"])
if acc["lost_live"] and sum(host_drops.values()) < acc["lost_live"]:
    failures.append(f"accounting: {acc['lost_live']} frames lost in live sessions and not covered "
                    f"by host counters {host_drops}")

# 4./5. host memory and descriptors
rss_growth_kib = anon1 - anon0
if rss_growth_kib > int(rss_bound) * 1024:
    failures.append(f"host memory: RssAnon grew {rss_growth_kib} KiB (> {rss_bound} MiB): "
                    f"{anon0} -> {anon1} KiB")
if fd1 - fd0 > int(fd_bound):
    failures.append(f"host fds: {fd0} -> {fd1} (> +{fd_bound})")

summary = dict(
    passed=not failures, failures=failures, seed=int(seed), binary=binary,
    sanitized=bool(int(sanitized)), duration_s=int(duration), guests=int(guests),
    queues=int(queues), kills=int(kills), incarnations=len(incs),
    release_max_ms=int(release_ms), frames=acc, host_named_counters=host_drops,
    host=dict(start=dict(vm_rss_kib=rss0, rss_anon_kib=anon0, rss_shmem_kib=shm0, fds=fd0),
              end=dict(vm_rss_kib=rss1, rss_anon_kib=anon1, rss_shmem_kib=shm1, fds=fd1),
              rss_anon_bound_mib=int(rss_bound), fd_bound=int(fd_bound), exit=int(host_rc)),
    sanitizer_reports=san, run_dir=run)
json.dump(summary, open(out_json, "w"), indent=2)

def row(name, value, note=""):
    print(f"  {name:<34} {value:>14}  {note}")
print()
print(f"uvmbus soak: {duration} s, {guests} guests x {queues} queues, {kills} kills "
      f"({len(incs)} incarnations), seed {seed}, {'ASan/UBSan' if int(sanitized) else 'unsanitized'} build")
print("  frames")
row("sent", acc["sent"], f"(survivors' sessions {acc['sent_by_survivors']} + killed senders' seen {acc['sent_by_killed_seen']})")
row("received intact", acc["received"], f"(of them from killed senders {acc['received_from_killed']})")
row("acked_by_killed", acc["acked_by_killed"], "received intact by an incarnation killed later (its ack)")
row("dropped: in_flight_to_killed", acc["in_flight_to_killed"], f"unacked when the receiver died ({acc['sessions_to_killed']} sessions)")
row("dropped: in_flight_from_killed", acc["in_flight_from_killed"], f"holes left by a killed sender ({acc['sessions_from_killed']} sessions)")
row("lost in live sessions", acc["lost_live"], f"must be 0 ({acc['sessions_live']} sessions)")
row("bad / duplicates", f"{acc['bad']} / {acc['duplicates']}", "must be 0")
row("stale / foreign / out_of_window", f"{acc['stale']} / {acc['foreign']} / {acc['out_of_window']}", "copies/stragglers of the in-flight frames")
print("  host named counters (non-zero): " + (", ".join(f"{k}={v}" for k, v in sorted(host_drops.items())) or "none"))
print("  host process            start          end")
print(f"  VmRSS KiB          {rss0:>10} {rss1:>12}")
print(f"  RssAnon KiB        {anon0:>10} {anon1:>12}   growth {rss_growth_kib} KiB (bound {rss_bound} MiB)")
print(f"  RssShmem KiB       {shm0:>10} {shm1:>12}   (guest RAM the host maps)")
print(f"  open fds           {fd0:>10} {fd1:>12}   (bound +{fd_bound})")
print(f"  slowest release after SIGKILL: {release_ms} ms; host exit {host_rc}")
print(f"  sanitizer reports: {len(san)}; core files: {len(cores)}")
print("RESULT: " + ("PASS" if not failures else "FAIL"))
for f in failures:
    print("  - " + f)
sys.exit(0 if not failures else 1)
PY
STATUS=$?
set -e
if [[ -n $JSON ]]; then
  if [[ -n $JSON_FILE ]]; then cp "$SUMMARY_JSON" "$JSON_FILE"; else cat "$SUMMARY_JSON"; fi
fi
[[ $STATUS -eq 0 ]] && SOAK_PASSED=1
[[ $STATUS -ne 0 || $KEEP -eq 1 ]] && echo "soak.sh: logs kept in $RUN" >&2
exit "$STATUS"
