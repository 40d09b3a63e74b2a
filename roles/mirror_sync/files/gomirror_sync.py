#!/usr/bin/python3
"""Pull one mirror job from an rsync source in stages: content first, index last.

Installed by the Ansible role mirror_sync. A job is a JSON file (see --check-config);
its stages come from a profile (goproxy, debian, plain, or one of your own):

  * every stage is one rsync run with its own filter rules; only the last stage may
    delete, and it deletes with --delete-delay, so removals happen after all arrivals;
  * files are received into a temporary directory outside the served tree (on the same
    file system, so each file appears by an atomic rename), never as partial files;
  * a stage marked hold_back_pending first lists what the previous stage would still
    transfer (content that arrived upstream meanwhile) and skips its own files in those
    directories until the next run: an index never names content that is not there;
  * the upstream's trace files (.gomirror-trace/) are copied last, then this host's own
    trace file is written, so monitoring can tell each replica's age;
  * a status file (JSON) records every attempt; one run at a time (flock);
    SIGTERM (stop, timeout) ends rsync, records the failure and cleans the temp dir.

Usage: gomirror-sync --config JOB.json | --check-config JOB.json | --write-trace DIR
(installed as /usr/local/bin/gomirror-sync)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TRACE_DIR = ".gomirror-trace"
REQUIRED = ("name", "source", "destination", "temp_dir", "stages", "state_dir")
KNOWN = set(REQUIRED) | {
    "user", "password_file", "bwlimit", "io_timeout", "excludes", "options",
    "lock_dir", "rsync", "hostname",
}
STAGE_KEYS = {"name", "filters", "options", "delete", "hold_back_pending"}
# Options that would defeat the staging (deletes outside the last stage, files
# written inside the served tree, or the source being modified).
FORBIDDEN_OPTIONS = re.compile(
    r"^--(del|delete.*|remove-source-files|partial|partial-dir.*|temp-dir.*|inplace|append.*"
    r"|delay-updates|password-file.*|daemon|server|sender)(=.*)?$"
)
RSYNC_OK = {0, 24}  # 24: some source files vanished during the transfer (normal on a live tree)
STATS = {
    "files_transferred": re.compile(r"^Number of regular files transferred: ([\d,.]+)", re.M),
    "files_deleted": re.compile(r"^Number of deleted files: ([\d,.]+)", re.M),
    "bytes_transferred": re.compile(r"^Total transferred file size: ([\d,.]+)", re.M),
    "bytes_received": re.compile(r"^Total bytes received: ([\d,.]+)", re.M),
    "bytes_sent": re.compile(r"^Total bytes sent: ([\d,.]+)", re.M),
}


class TerminatedError(Exception):
    """SIGTERM or SIGINT arrived (systemctl stop/kill, TimeoutStartSec)."""


class JobError(Exception):
    """A run failed; .code is the exit code recorded in the status file."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def log(job: str, message: str) -> None:
    print(f"gomirror-sync[{job}]: {message}", flush=True)


def check_config(cfg: dict) -> list[str]:
    """Every problem of a job config, as messages naming the key."""
    errors = [f"missing key '{k}'" for k in REQUIRED if k not in cfg]
    errors += [f"unknown key '{k}'" for k in sorted(set(cfg) - KNOWN)]
    if errors:
        return errors
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", str(cfg["name"])):
        errors.append("name must match [a-z0-9][a-z0-9_-]*")
    src = str(cfg["source"])
    if not (re.fullmatch(r"rsync://[^/\s]+/[^\s]+", src) or re.fullmatch(r"[^:/\s]+::[^\s]+", src)):
        errors.append(f"source '{src}' must be rsync://host/module[/path] or host::module[/path]")
    for key in ("destination", "temp_dir", "state_dir"):
        if not os.path.isabs(str(cfg[key])):
            errors.append(f"{key} '{cfg[key]}' must be an absolute path")
    dest = os.path.normpath(str(cfg["destination"]))
    tmp = os.path.normpath(str(cfg["temp_dir"]))
    if tmp == dest or tmp.startswith(dest + "/"):
        errors.append(f"temp_dir '{tmp}' must lie outside the destination '{dest}'")
    for opt in cfg.get("options", []):
        if not str(opt).startswith("--") or FORBIDDEN_OPTIONS.match(str(opt)):
            errors.append(f"option '{opt}' is not allowed (long options only; no delete, "
                          "partial, temp-dir, inplace or delay-updates: the stages own those)")
    stages = cfg["stages"]
    if not isinstance(stages, list) or not stages:
        errors.append("stages must be a non-empty list")
        return errors
    for i, stage in enumerate(stages):
        unknown = sorted(set(stage) - STAGE_KEYS)
        if unknown or "name" not in stage:
            errors.append(f"stage {i}: needs a name; unknown keys {unknown}")
        if stage.get("delete") and i != len(stages) - 1:
            errors.append(f"stage '{stage.get('name')}': only the last stage may delete")
        if stage.get("hold_back_pending") and i == 0:
            errors.append(f"stage '{stage.get('name')}': hold_back_pending needs a previous stage")
        for rule in stage.get("filters", []):
            if not re.match(r"^[-+PR] \S", str(rule)):
                errors.append(f"stage '{stage.get('name')}': filter '{rule}' must be '- PAT', "
                              "'+ PAT', 'P PAT' or 'R PAT'")
    return errors


def source_url(cfg: dict) -> str:
    src = str(cfg["source"])
    user = cfg.get("user") or ""
    if user and "@" not in src.split("::", maxsplit=1)[0].replace("rsync://", ""):
        src = src.replace("rsync://", f"rsync://{user}@", 1) if src.startswith("rsync://") \
            else f"{user}@{src}"
    return src.rstrip("/") + "/"


def public_source(cfg: dict) -> str:
    return re.sub(r"(rsync://)?[^@/]*@", r"\1", str(cfg["source"]))


class Run:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.job = cfg["name"]
        self.dest = os.path.normpath(cfg["destination"])
        self.tmp = os.path.normpath(cfg["temp_dir"])
        self.host = cfg.get("hostname") or socket.gethostname()
        self.child: subprocess.Popen | None = None
        self.totals = dict.fromkeys(STATS, 0)
        self.stages: list[dict] = []
        self.held_back: list[str] = []
        self.terminated = ""

    # -- rsync ---------------------------------------------------------------
    def base_args(self) -> list[str]:
        cfg = self.cfg
        args = [cfg.get("rsync", "/usr/bin/rsync"), "-rlpt", "--safe-links",
                "--chmod=D0755,F0644", "--no-h", "--stats", "--contimeout=60",
                f"--timeout={int(cfg.get('io_timeout', 600))}", f"--temp-dir={self.tmp}"]
        if str(cfg.get("bwlimit", "0")) not in ("", "0"):
            args.append(f"--bwlimit={cfg['bwlimit']}")
        if cfg.get("password_file"):
            args.append(f"--password-file={cfg['password_file']}")
        args += [str(o) for o in cfg.get("options", [])]
        # The trace directory travels last, in its own step; never in a stage.
        args.append(f"--filter=- /{TRACE_DIR}/")
        args += [f"--filter=- {p}" for p in cfg.get("excludes", [])]
        return args

    def rsync(self, args: list[str], what: str) -> tuple[int, str]:
        log(self.job, f"{what}: {' '.join(a for a in args if 'password' not in a)}")
        self.child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, errors="replace")
        out = self.child.communicate()[0]
        code = self.child.returncode
        self.child = None
        for line in out.splitlines():
            if line.strip() and not line.startswith(("Number of", "Total", "Literal", "Matched",
                                                     "File list", "sent ", "total size",
                                                     "PENDING ")):
                log(self.job, f"{what}: {line}")
        return code, out

    def stage_args(self, stage: dict, extra_filters: list[str]) -> list[str]:
        args = self.base_args() + [str(o) for o in stage.get("options", [])]
        args += [f"--filter={r}" for r in extra_filters]
        args += [f"--filter={r}" for r in stage.get("filters", [])]
        if stage.get("delete"):
            # Deletions last: this host's own trace is protected, everything else mirrors.
            args += ["--delete-delay", f"--filter=P /{TRACE_DIR}/"]
        return args + [source_url(self.cfg), self.dest + "/"]

    def pending_directories(self, previous: dict) -> list[str]:
        """Directories where the previous stage would still transfer something."""
        args = self.stage_args(previous, [])
        args[1:1] = ["--dry-run", "--out-format=PENDING %n"]
        code, out = self.rsync(args, f"{previous['name']} (re-list)")
        if code not in RSYNC_OK:
            raise JobError(f"re-listing stage {previous['name']} failed (rsync exit {code})", code)
        return sorted({os.path.dirname(line[8:]) for line in out.splitlines()
                       if line.startswith("PENDING ") and not line.endswith("/")})

    def run_stages(self) -> None:
        stages = self.cfg["stages"]
        for i, stage in enumerate(stages):
            extra = []
            if stage.get("hold_back_pending"):
                held = self.pending_directories(stages[i - 1])
                self.held_back += held
                extra = [f"- /{glob_escape(d)}/*" if d else "- /*" for d in held]
                if held:
                    log(self.job, f"{stage['name']}: holding back {len(held)} director"
                        f"{'y' if len(held) == 1 else 'ies'} whose content is still arriving")
            started = time.monotonic()
            code, out = self.rsync(self.stage_args(stage, extra), f"stage {stage['name']}")
            stats = {k: int(re.sub(r"\D", "", m.group(1))) if (m := rx.search(out)) else 0
                     for k, rx in STATS.items()}
            self.stages.append({"name": stage["name"], "exit_code": code,
                                "duration_seconds": round(time.monotonic() - started, 3), **stats})
            for k in STATS:
                self.totals[k] += stats[k]
            if code not in RSYNC_OK:
                raise JobError(f"stage {stage['name']} failed (rsync exit {code}); "
                               "later stages skipped, the served index is unchanged", code)

    def sync_trace(self) -> dict:
        """Copy the upstream's trace files (all but ours), then write ours."""
        trace = os.path.join(self.dest, TRACE_DIR)
        os.makedirs(trace, exist_ok=True)
        args = [a for a in self.base_args() if a != f"--filter=- /{TRACE_DIR}/"]
        args = [a for a in args if a != "--stats"] + [f"--filter=- /{self.host}",
                                                      "--filter=- .*",
                                                      source_url(self.cfg) + TRACE_DIR + "/",
                                                      trace + "/"]
        code, out = self.rsync(args, "trace")
        if code not in RSYNC_OK and "No such file or directory" not in out:
            raise JobError(f"copying the upstream trace failed (rsync exit {code})", code)
        upstream = {}
        for name in sorted(os.listdir(trace)):
            if name != self.host and not name.startswith("."):
                with open(os.path.join(trace, name), errors="replace") as fh:
                    lines = fh.read(4096).splitlines()
                dates = [x[6:].strip() for x in lines if x.startswith("Date: ")]
                upstream[name] = dates[0] if dates else (lines[0].strip() if lines else "")
        return upstream

    # -- the run ----------------------------------------------------------------
    def prepare_dirs(self) -> None:
        os.makedirs(self.dest, exist_ok=True)
        if os.path.isdir(self.tmp):
            shutil.rmtree(self.tmp)  # stale temp files of a killed run
        os.makedirs(self.tmp, mode=0o700)
        if os.stat(self.tmp).st_dev != os.stat(self.dest).st_dev:
            raise JobError(f"temp_dir {self.tmp} is not on the file system of {self.dest}: "
                           "files could not appear by an atomic rename", 2)

    def cleanup(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self.tmp)

    def terminate_child(self) -> None:
        if self.child and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(10)
            except subprocess.TimeoutExpired:
                self.child.kill()


def glob_escape(path: str) -> str:
    """A literal path inside an rsync filter pattern."""
    return re.sub(r"([*?\[\\])", r"\\\1", path)


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_trace(directory: str, lines: dict) -> str:
    trace_dir = os.path.join(directory, TRACE_DIR)
    os.makedirs(trace_dir, exist_ok=True)
    stamp = now()
    body = stamp.strftime("%a %b %d %H:%M:%S UTC %Y") + "\n"
    body += "".join(f"{k}: {v}\n" for k, v in {"Date": iso(stamp), **lines}.items())
    path = os.path.join(trace_dir, socket.gethostname())
    write_atomic(path, body)
    return path


def run_job(cfg: dict) -> int:
    job = cfg["name"]
    lock_path = os.path.join(cfg.get("lock_dir", "/run/lock"), f"gomirror-sync-{job}.lock")
    lock = open(lock_path, "w")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(job, f"locked: another run holds {lock_path}; nothing done")
        return 0

    run = Run(cfg)
    status_path = os.path.join(cfg["state_dir"], f"{job}.json")
    previous = {}
    with contextlib.suppress(OSError, ValueError), open(status_path) as fh:
        previous = json.load(fh)

    def on_signal(signum, _frame):
        run.terminated = signal.Signals(signum).name
        run.terminate_child()
        raise TerminatedError(run.terminated)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started, clock = now(), time.monotonic()
    state, code, message, upstream = "failed", 1, "", {}
    try:
        run.prepare_dirs()
        run.run_stages()
        upstream = run.sync_trace()
        write_trace(run.dest, {
            "Job": job, "Upstream": public_source(cfg), "Date-Started": iso(started),
            "Upstream-Trace": "; ".join(f"{k}={v}" for k, v in upstream.items()) or "none",
            "Total bytes received in rsync": run.totals["bytes_received"],
        })
        state, code, message = "ok", 0, "synced"
    except (TerminatedError, JobError) as exc:
        # A signal may reach rsync (same cgroup) before this process: report the signal.
        if run.terminated:
            code = 128 + getattr(signal, run.terminated).value
            message = f"terminated by {run.terminated}"
        else:
            code, message = exc.code, str(exc)
    except OSError as exc:
        code, message = 1, f"{type(exc).__name__}: {exc}"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run.terminate_child()
        run.cleanup()

    status = {
        "job": job,
        "source": public_source(cfg),
        "destination": run.dest,
        "state": state,
        "exit_code": code,
        "message": message,
        "last_attempt": iso(started),
        "last_success": iso(started) if state == "ok" else previous.get("last_success"),
        "duration_seconds": round(time.monotonic() - clock, 3),
        **run.totals,
        "held_back_directories": len(run.held_back),
        "upstream_trace": upstream or previous.get("upstream_trace", {}),
        "stages": run.stages,
    }
    os.makedirs(cfg["state_dir"], exist_ok=True)
    write_atomic(status_path, json.dumps(status, indent=2) + "\n")
    log(job, f"{state}: {message} (exit {code}, {status['files_transferred']} files, "
             f"{status['bytes_transferred']} bytes, {status['duration_seconds']} s)")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", help="run the job described by this JSON file")
    group.add_argument("--check-config", help="check a job file and exit")
    group.add_argument("--write-trace", metavar="DIR",
                       help="write DIR/.gomirror-trace/<hostname> (the source side's trace)")
    args = parser.parse_args(argv)

    if args.write_trace:
        print(write_trace(args.write_trace, {"Host": socket.gethostname()}))
        return 0
    path = args.check_config or args.config
    try:
        with open(path) as fh:
            cfg = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"gomirror-sync: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    errors = check_config(cfg) if isinstance(cfg, dict) else ["not a JSON object"]
    if errors:
        for e in errors:
            print(f"gomirror-sync: {path}: {e}", file=sys.stderr)
        return 2
    if args.check_config:
        return 0
    return run_job(cfg)


if __name__ == "__main__":
    sys.exit(main())
