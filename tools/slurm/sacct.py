#!/usr/bin/env python3
"""A stand-in for `sacct` on a cluster without an accounting database (tools/slurm/cluster.sh).

Answers the one query submitit makes, `sacct -o JobID,State,NodeList --parsable2 -j ID [-j ID ...]`,
from `squeue` (jobs still queued or running) and the jobcomp/filetxt file named by JobCompLoc in
$SLURM_CONF (jobs that ended). Array tasks are named ARRAYID_TASKID, as the real sacct names them.
"""
import os
import re
import subprocess
import sys

FIELDS = ["JobID", "State", "NodeList"]
# Queue states submitit counts as unfinished; any other state of a job still in the queue (CONFIGURING,
# SUSPENDED, ...) is reported as RUNNING, since the job has not ended.
UNFINISHED = {"PENDING", "RUNNING", "REQUEUED", "COMPLETING", "PREEMPTED"}


def parse_args(argv):
    """The job ids asked for; anything but submitit's query is refused with the query it supports."""
    ids, fields, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-j", "--jobs") and i + 1 < len(argv):
            ids += argv[i + 1].split(","); i += 2
        elif arg.startswith("--jobs="):
            ids += arg.split("=", 1)[1].split(","); i += 1
        elif arg in ("-o", "--format") and i + 1 < len(argv):
            fields = argv[i + 1].split(","); i += 2
        elif arg.startswith("--format="):
            fields = arg.split("=", 1)[1].split(","); i += 1
        elif arg in ("--parsable2", "-P"):
            i += 1
        else:
            sys.exit(f"sacct stand-in: unsupported argument {arg!r}; it answers only "
                     "`sacct -o JobID,State,NodeList --parsable2 -j ID ...`")
    if fields != FIELDS:
        sys.exit(f"sacct stand-in: unsupported format {fields}; use -o {','.join(FIELDS)}")
    return {i.split("_")[0] for i in ids}


def jobcomp_path():
    with open(os.environ["SLURM_CONF"]) as conf:
        for line in conf:
            if line.strip().startswith("JobCompLoc="):
                return line.strip().split("=", 1)[1]
    sys.exit("sacct stand-in: no JobCompLoc in $SLURM_CONF; start the cluster with tools/slurm/cluster.sh")


def ended(wanted):
    """{job id: (state, nodes, start time)} from the jobcomp file; a later record (after a requeue) wins."""
    rows = {}
    try:
        with open(jobcomp_path()) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return rows
    for line in lines:
        rec = dict(re.findall(r"(\w+)=(\S*)", line))
        array_id, task_id = rec.get("ArrayJobId", "0"), rec.get("ArrayTaskId", "4294967294")
        if array_id not in ("", "0") and task_id.isdigit() and int(task_id) < 4294967294:
            main, name = array_id, f"{array_id}_{task_id}"
        else:
            main = name = rec.get("JobId", "")
        if main in wanted:
            rows[name] = (rec.get("JobState", "UNKNOWN"), rec.get("NodeList", ""), rec.get("StartTime", ""))
    return rows


def queued(wanted):
    """{job id: (state, nodes, start time)} from squeue, one row per array task."""
    out = subprocess.run(["squeue", "-h", "-a", "-r", "-o", "%i|%T|%N|%S"], capture_output=True,
                         text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        name, state, nodes, start = line.split("|")
        if name.split("_")[0] in wanted:
            state = "REQUEUED" if state.startswith("REQUEUE") else state
            rows[name] = (state if state in UNFINISHED else "RUNNING", nodes, start)
    return rows


def main():
    wanted = parse_args(sys.argv[1:])
    rows = ended(wanted)
    for name, row in queued(wanted).items():  # read after the file: a job still queued has not ended ...
        done = rows.get(name)
        # ... unless it is only cleaning up (COMPLETING, up to KillWait after a cancel) and this attempt
        # (same start time) already has its record: then, like the real sacct, report how it ended.
        if not (row[0] == "COMPLETING" and done and done[2] == row[2]):
            rows[name] = row
    print("|".join(FIELDS))
    for name, (state, nodes, _) in rows.items():
        print(f"{name}|{state}|{nodes}")


if __name__ == "__main__":
    main()
