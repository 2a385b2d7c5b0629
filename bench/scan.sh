#!/usr/bin/env bash
# The scan benchmark: mediadb's scan beside the tools that bound it, in the same run.
# See `bench/scan.sh --help`.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/scan.sh [--quick] [--sizes N,N,...] [--tagged-files N] [--reps N] [WORKLOAD...]

Measures `mediadb scan` on synthetic libraries beside the floors and peers that bound it,
interleaving the tools (one untimed warm-up round, then --reps timed rounds), with wall time
and peak RSS (/usr/bin/time -f '%e %M %U %S'; wall time is taken with ns resolution around
it, and user + system CPU seconds are kept too: on a shared machine, CPU time per file is the
steadier comparison, wall time the one users feel).

Workloads (default: all four):
  rescan    unchanged rescan of the plain tree, warm cache, after one untimed initial scan:
              mediadb  mediadb --db DB scan -j T --progress never --json ROOT
              fsfloor  fsfloor walk -t T ROOT          (getdents64 + statx: the rescan floor)
              fd       fdfind -u -j T -t f --changed-before 2100-01-01 . ROOT | wc -l
                       (fd with one stat per file)
              plocate  updatedb -l 0 -U ROOT -o OUT.db --prunepaths '' ... (its second and
                       later runs: it re-reads only directories whose mtime changed)
  first     first scan of the plain tree, a fresh database every repetition:
              mediadb, fsfloor walk, find ROOT -type f -printf '%s %T@ %p\n' >/dev/null
  mutated   rescan after 1% of the files changed, 1% added and 1% removed: every round
            first applies a fresh mutation (mediadb-gen mutate --seed ROUND) to a working
            copy of the plain tree, untimed, then times mediadb's rescan, plocate's updatedb
            (whose database also lags by that one mutation) and fsfloor walk
  tagged    first scan of real tagged audio (mediadb-gen tagged: copies of the fixtures,
            each retagged): mediadb (fresh database) vs fsfloor tags -t T ROOT
            (open + lofty probe/read of every file: the first-scan floor)

Options:
  --quick           10,000 plain files, 2,000 tagged, 1 repetition
  --sizes LIST      plain tree sizes, comma-separated (default 1000000)
  --tagged-files N  tagged tree size (default 100000)
  --reps N          timed repetitions per tool (default 3)
  -h, --help        this text

Environment:
  MEDIADB_BENCH_DIR      work directory for trees and databases (default /tmp/mediadb-bench);
                         trees are generated once (deterministic seed) and reused
  MEDIADB_BENCH_THREADS  threads for every tool that takes a thread count (default 2)
  FSFLOOR_DIR            the fsfloor probe's source (default ../shared/tools/fsfloor beside
                         the repository); if absent, its baselines are skipped

It builds mediadb and mediadb-gen (release), and fsfloor as its README says (into
/tmp/fsfloor-target), and installs missing peers with apt-get (fd-find, plocate, time).
Each measurement is appended as one JSON line to bench/results/scan.jsonl:
  {"workload","tool","files","secs","files_per_s","peak_rss_kb","rep",
   "cpu_secs","threads","load1","run","rev"}
and a summary (median files/s, median seconds, median CPU seconds, peak RSS, mediadb's ratio
to each tool by wall time and by CPU time, and the targets) is printed on stderr at the end. The machine's load average is recorded with
every line: compare runs only at similar loads.
EOF
}

die() {
    echo "scan.sh: $*" >&2
    exit 1
}
note() { echo "scan.sh: $*" >&2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${MEDIADB_BENCH_DIR:-/tmp/mediadb-bench}
THREADS=${MEDIADB_BENCH_THREADS:-2}
FSFLOOR_SRC=${FSFLOOR_DIR:-$REPO/../shared/tools/fsfloor}
FSFLOOR_TARGET=/tmp/fsfloor-target
SIZES=1000000
TAGGED=100000
REPS=3
WORKLOADS=()

while [ $# -gt 0 ]; do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --quick)
        SIZES=10000
        TAGGED=2000
        REPS=1
        ;;
    --sizes)
        SIZES=${2:?--sizes needs a list}
        shift
        ;;
    --tagged-files)
        TAGGED=${2:?--tagged-files needs a number}
        shift
        ;;
    --reps)
        REPS=${2:?--reps needs a number}
        shift
        ;;
    rescan | first | mutated | tagged) WORKLOADS+=("$1") ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
    shift
done
[ ${#WORKLOADS[@]} -gt 0 ] || WORKLOADS=(rescan first mutated tagged)
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
for n in "${SIZE_LIST[@]}" "$TAGGED" "$REPS" "$THREADS"; do
    if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -eq 0 ]; then die "not a positive number: $n"; fi
done

wants() {
    local w
    for w in "${WORKLOADS[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
need_apt() { # need_apt COMMAND PACKAGE: install PACKAGE if COMMAND is missing
    command -v "$1" >/dev/null 2>&1 && return 0
    note "installing $2 (for $1)"
    if [ -z "${APT_UPDATED:-}" ]; then
        apt-get update -qq >&2 || true
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2 || true
    command -v "$1" >/dev/null 2>&1
}

need_apt /usr/bin/time time || die "/usr/bin/time is required (apt-get install time)"
HAVE_FD=1 HAVE_PLOCATE=1
need_apt fdfind fd-find || {
    note "fd-find unavailable: skipping the fd baseline"
    HAVE_FD=
}
need_apt updatedb plocate || {
    note "plocate unavailable: skipping the plocate baseline"
    HAVE_PLOCATE=
}

note "building mediadb and mediadb-gen (release)"
(cd "$REPO" && cargo build --release --quiet -p mediadb -p mediadb-gen --bins) ||
    die "cargo build failed"
MEDIADB=$REPO/target/release/mediadb
GEN=$REPO/target/release/mediadb-gen
FSFLOOR=
if [ -f "$FSFLOOR_SRC/Cargo.toml" ]; then
    note "building fsfloor from $FSFLOOR_SRC"
    cargo build --release --quiet --manifest-path "$FSFLOOR_SRC/Cargo.toml" \
        --target-dir "$FSFLOOR_TARGET" || die "building fsfloor failed"
    FSFLOOR=$FSFLOOR_TARGET/release/fsfloor
else
    note "no fsfloor at $FSFLOOR_SRC (/work/shared absent?): skipping the fsfloor baselines"
fi

mkdir -p "$WORK" "$REPO/bench/results"
exec 9>"$WORK/.lock"
flock -n 9 || die "another scan.sh is running on $WORK"
RESULTS=$REPO/bench/results/scan.jsonl
RUN=$(date -u +%Y%m%dT%H%M%SZ)-$$
REV=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
RUN_TSV=$WORK/run-$RUN.tsv
OUTF=$WORK/out.txt
ERRF=$WORK/err.txt
TIMEF=$WORK/time.txt
: >"$RUN_TSV"

# ---------------------------------------------------------------------------------------------
# Trees
# ---------------------------------------------------------------------------------------------
# gen_tree KIND N DIR: generate DIR once (into DIR.partial, renamed when complete).
gen_tree() {
    local kind=$1 n=$2 dir=$3
    [ -d "$dir" ] && return 0
    rm -rf "$dir.partial"
    note "generating $kind tree of $n files in $dir"
    if [ "$kind" = tagged ]; then
        "$GEN" tagged "$dir.partial" --files "$n" --templates "$REPO/fixtures/library" >&2
    else
        "$GEN" plain "$dir.partial" --files "$n" >&2
    fi
    mv "$dir.partial" "$dir"
}

rm_db() { rm -f "$1" "$1.idx" "$1.lock"; }

# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }

# run_timed CMD...: runs CMD under /usr/bin/time; sets SECS, RSS_KB, CPU, RC.
run_timed() {
    local t0 t1
    RC=0
    t0=$(date +%s%N)
    /usr/bin/time -f '%e %M %U %S' -o "$TIMEF" "$@" >"$OUTF" 2>"$ERRF" || RC=$?
    t1=$(date +%s%N)
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
    RSS_KB=$(awk 'END { print $2 + 0 }' "$TIMEF")
    CPU=$(awk 'END { printf "%.2f", $3 + $4 }' "$TIMEF")
}

json_field() { # json_field NAME FILE: the first numeric "NAME":value in FILE
    grep -o "\"$1\":[0-9]*" "$2" | head -n 1 | cut -d: -f2
}

# check WORKLOAD TOOL FILES: complain if the tool failed or saw a different number of files.
check() {
    local workload=$1 tool=$2 files=$3 seen=
    if [ "$RC" -ne 0 ] && ! { [ "$tool" = mediadb ] && [ "$RC" -eq 3 ]; }; then
        tail -n 5 "$ERRF" >&2
        die "$workload/$tool exited with $RC"
    fi
    case $tool in
    mediadb | fsfloor*) seen=$(json_field files "$OUTF") ;;
    fd) seen=$(tr -d ' \n' <"$OUTF") ;;
    esac
    if [ -n "$seen" ] && [ "$seen" != "$files" ]; then
        note "warning: $workload/$tool saw $seen files, expected $files"
    fi
    if [ "$tool" = mediadb ] && [ "$RC" -eq 3 ]; then
        note "warning: $workload/mediadb exited 3 (some files could not be read)"
    fi
}

# measure WORKLOAD TOOL FILES REP CMD...: time CMD; REP 0 is the warm-up and is not recorded.
measure() {
    local workload=$1 tool=$2 files=$3 rep=$4 rate load
    shift 4
    run_timed "$@"
    check "$workload" "$tool" "$files"
    [ "$rep" -eq 0 ] && return 0
    rate=$(awk -v f="$files" -v s="$SECS" 'BEGIN { printf "%.0f", f / (s > 0 ? s : 1e-9) }')
    load=$(load1)
    printf '{"workload":"%s","tool":"%s","files":%s,"secs":%s,"files_per_s":%s,"peak_rss_kb":%s,"rep":%s,"cpu_secs":%s,"threads":%s,"load1":%s,"run":"%s","rev":"%s"}\n' \
        "$workload" "$tool" "$files" "$SECS" "$rate" "$RSS_KB" "$rep" "$CPU" "$THREADS" \
        "$load" "$RUN" "$REV" | tee -a "$RESULTS" >&2
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$files" "$tool" "$rate" "$SECS" \
        "$RSS_KB" "$CPU" >>"$RUN_TSV"
}

# The commands, as functions so each can be timed by /usr/bin/time through `bash -c`.
mediadb_scan() { "$MEDIADB" --db "$1" scan -j "$THREADS" --progress never --json "$2"; }
fsfloor_walk() { "$FSFLOOR" walk -t "$THREADS" "$1"; }
fsfloor_tags() { "$FSFLOOR" tags -t "$THREADS" "$1"; }
fd_stat() { fdfind -u -j "$THREADS" -t f --changed-before 2100-01-01 . "$1" | wc -l; }
find_printf() { find "$1" -type f -printf '%s %T@ %p\n' >/dev/null; }
plocate_update() {
    updatedb -l 0 -U "$1" -o "$2" --prunepaths '' --prunefs '' --prunenames '' \
        --prune-bind-mounts no
}
export MEDIADB FSFLOOR THREADS
export -f mediadb_scan fsfloor_walk fsfloor_tags fd_stat find_printf plocate_update
timed() { # timed WORKLOAD TOOL FILES REP FUNCTION ARGS...
    local w=$1 t=$2 f=$3 r=$4
    shift 4
    measure "$w" "$t" "$f" "$r" bash -c '"$@"' _ "$@"
}

# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------
wl_rescan() {
    local n=$1 root=$WORK/plain-$1 db=$WORK/rescan-$1.mediadb pl=$WORK/plocate-$1.db rep
    gen_tree plain "$n" "$root"
    note "rescan, $n files: initial scan (untimed)"
    rm_db "$db"
    mediadb_scan "$db" "$root" >/dev/null
    [ -n "$HAVE_PLOCATE" ] && plocate_update "$root" "$pl"
    for rep in $(seq 0 "$REPS"); do
        timed rescan mediadb "$n" "$rep" mediadb_scan "$db" "$root"
        [ -n "$FSFLOOR" ] && timed rescan fsfloor "$n" "$rep" fsfloor_walk "$root"
        [ -n "$HAVE_FD" ] && timed rescan fd "$n" "$rep" fd_stat "$root"
        [ -n "$HAVE_PLOCATE" ] && timed rescan plocate "$n" "$rep" plocate_update "$root" "$pl"
    done
    rm_db "$db"
    rm -f "$pl"
}

wl_first() {
    local n=$1 root=$WORK/plain-$1 db=$WORK/first-$1.mediadb rep
    gen_tree plain "$n" "$root"
    note "first scan, $n files"
    for rep in $(seq 0 "$REPS"); do
        rm_db "$db"
        timed first mediadb "$n" "$rep" mediadb_scan "$db" "$root"
        [ -n "$FSFLOOR" ] && timed first fsfloor "$n" "$rep" fsfloor_walk "$root"
        timed first find "$n" "$rep" find_printf "$root"
    done
    rm_db "$db"
}

wl_mutated() {
    local n=$1 root=$WORK/mutated-$1 db=$WORK/mutated-$1.mediadb pl=$WORK/plocate-mut-$1.db
    local rep files
    # A working copy, regenerated from the same seed each run (so identical to plain-N).
    rm -rf "$root"
    gen_tree plain "$n" "$root"
    note "rescan after 1% changed/added/removed, $n files: initial scan (untimed)"
    rm_db "$db"
    mediadb_scan "$db" "$root" >/dev/null
    [ -n "$HAVE_PLOCATE" ] && plocate_update "$root" "$pl"
    for rep in $(seq 0 "$REPS"); do
        "$GEN" mutate "$root" --change 1 --add 1 --remove 1 --seed "$((rep + 1))" >"$OUTF"
        files=$(json_field files_after "$OUTF")
        timed mutated mediadb "$files" "$rep" mediadb_scan "$db" "$root"
        [ -n "$HAVE_PLOCATE" ] && timed mutated plocate "$files" "$rep" plocate_update "$root" "$pl"
        [ -n "$FSFLOOR" ] && timed mutated fsfloor "$files" "$rep" fsfloor_walk "$root"
    done
    rm_db "$db"
    rm -f "$pl"
    rm -rf "$root"
}

wl_tagged() {
    local n=$1 root=$WORK/tagged-$1 db=$WORK/tagged-$1.mediadb rep
    gen_tree tagged "$n" "$root"
    note "first scan of tagged audio, $n files"
    for rep in $(seq 0 "$REPS"); do
        rm_db "$db"
        timed tagged mediadb "$n" "$rep" mediadb_scan "$db" "$root"
        [ -n "$FSFLOOR" ] && timed tagged fsfloor-tags "$n" "$rep" fsfloor_tags "$root"
    done
    rm_db "$db"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
note "run $RUN (rev $REV), $THREADS threads, $REPS reps, load average $LOAD_START"
for n in "${SIZE_LIST[@]}"; do
    wants rescan && wl_rescan "$n"
    wants first && wl_first "$n"
    wants mutated && wl_mutated "$n"
done
wants tagged && wl_tagged "$TAGGED"
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Summary: medians per (workload, files, tool), mediadb's ratio to each tool, and the targets.
# ---------------------------------------------------------------------------------------------
{
    echo
    echo "scan benchmark $RUN (rev $REV), $THREADS threads, $REPS reps;" \
        "load average $LOAD_START at start, $LOAD_END at end"
    sort -t "$(printf '\t')" -k1,1 -k2,2n -k3,3 "$RUN_TSV" | awk -F '\t' '
        function median(a, k,    i, j, v) { # sorts a[1..k] in place (k is small)
            for (i = 2; i <= k; i++) {
                v = a[i]
                for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]
                a[j + 1] = v
            }
            return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
        }
        function flush(    key) {
            if (n == 0) return
            key = w SUBSEP f
            rows[++nrows] = key SUBSEP t
            rate[key, t] = median(r, n); secs[key, t] = median(s, n)
            cpu[key, t] = median(c, n); rss[key, t] = mx
            n = 0; mx = 0
        }
        function ratio(key, t, arr, inverse,    m) {
            m = arr[key, "mediadb"]
            if (t == "mediadb" || m == "" || arr[key, t] <= 0 || m <= 0) return ""
            return sprintf("%.2fx", inverse ? arr[key, t] / m : m / arr[key, t])
        }
        function verdict(what, ok, value) {
            printf "  %-4s %-48s %s\n", ok ? "ok" : "MISS", what, value
        }
        {
            if ($1 != w || $2 != f || $3 != t) { flush(); w = $1; f = $2; t = $3 }
            n++; r[n] = $4; s[n] = $5; c[n] = $7; if ($6 > mx) mx = $6
        }
        END {
            flush()
            print "medians; ratios are mediadb/tool by files/s (wall) and by files per CPU-second"
            printf "%-8s %8s %-12s %9s %8s %8s %10s %8s %8s\n", "workload", "files", "tool", \
                "files/s", "secs", "cpu-s", "peak RSS", "wall", "cpu"
            for (i = 1; i <= nrows; i++) {
                split(rows[i], p, SUBSEP); key = p[1] SUBSEP p[2]; t = p[3]
                printf "%-8s %8d %-12s %9.0f %8.3f %8.2f %7.1f MB %8s %8s\n", p[1], p[2], t, \
                    rate[key, t], secs[key, t], cpu[key, t], rss[key, t] / 1024, \
                    ratio(key, t, rate, 0), ratio(key, t, cpu, 1)
            }
            print ""
            print "targets (wall-time medians):"
            for (i = 1; i <= nrows; i++) {
                split(rows[i], p, SUBSEP); key = p[1] SUBSEP p[2]; t = p[3]
                if (t != "mediadb") continue
                m = rate[key, t]; label = p[1] " " p[2]
                if (p[1] == "rescan") {
                    if ((key, "fsfloor") in rate)
                        verdict(label ": >= 0.80x fsfloor walk", m >= 0.8 * rate[key, "fsfloor"], ratio(key, "fsfloor", rate, 0))
                    if ((key, "fd") in rate)
                        verdict(label ": ahead of fd", m > rate[key, "fd"], ratio(key, "fd", rate, 0))
                    if ((key, "plocate") in rate)
                        verdict(label ": ahead of plocate updatedb", m > rate[key, "plocate"], ratio(key, "plocate", rate, 0))
                    verdict(label ": peak RSS <= 128 MB", rss[key, t] <= 131072, sprintf("%.1f MB", rss[key, t] / 1024))
                } else if (p[1] == "first") {
                    verdict(label ": >= 400K files/s", m >= 400000, sprintf("%.0f files/s", m))
                } else if (p[1] == "tagged" && (key, "fsfloor-tags") in rate) {
                    verdict(label ": >= 0.80x fsfloor tags", m >= 0.8 * rate[key, "fsfloor-tags"], ratio(key, "fsfloor-tags", rate, 0))
                }
            }
        }
    '
    echo
    echo "results appended to $RESULTS"
} >&2
rm -f "$RUN_TSV"
