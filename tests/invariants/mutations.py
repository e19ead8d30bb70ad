"""Break each invariant on purpose and check that its tests notice: ``make check-invariants``.

For every mutation below, ``src/`` is copied to a temporary directory and one small edit is made to
the copy (the working tree is never touched); the invariant's tests then run with the copy first on
``PYTHONPATH``, so the test process and every notifyq process it starts import the broken code. The
tests must fail. A mutation whose text is no longer in the source is reported as stale: update it
with the code it breaks.

    python tests/invariants/mutations.py                # every mutation, SQLite cases only
    python tests/invariants/mutations.py --baseline     # first check the tests pass on the real code
    python tests/invariants/mutations.py --only no-look-up --only pickle-fallback
    python tests/invariants/mutations.py --list

Exit status: 0 when every mutation was caught (and, with ``--baseline``, the tests passed on the real code).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = "tests/invariants"
RUN_TIMEOUT_S = 900


@dataclass(frozen=True)
class Mutation:
    """One edit that breaks one invariant, and the tests that must catch it."""

    name: str
    invariant: str
    what: str
    path: str  # under src/notifyq
    old: str
    new: str
    tests: tuple[str, ...]
    select: str | None = None  # a pytest -k expression within ``tests``


MUTATIONS = (
    Mutation(
        name="requeue-skips-dispatching",
        invariant="1 the delivery row is the truth",
        what="notifyq requeue looks only for pending and retrying deliveries",
        path="worker/requeue.py",
        old="OWED = (st.PENDING, st.RETRYING, st.DISPATCHING)",
        new="OWED = (st.PENDING, st.RETRYING)",
        tests=(f"{TESTS}/test_delivery_row_is_the_truth.py",),
    ),
    Mutation(
        name="no-look-up",
        invariant="2 at most one live message",
        what="an unanswered create is sent again without looking in Twilio's list",
        path="worker/settle.py",
        old="found = await find_attempt(self.twilio, self.pacer, row, batch)",
        new="found = None",
        tests=(f"{TESTS}/test_at_most_one_live_message.py",),
    ),
    Mutation(
        name="claim-takes-dispatching",
        invariant="2 at most one live message",
        what="the claim's guard also takes deliveries whose create may be in flight",
        path="statuses.py",
        old="CLAIMABLE: Final = frozenset({PENDING, RETRYING})",
        new="CLAIMABLE: Final = frozenset({PENDING, RETRYING, DISPATCHING})",
        tests=(f"{TESTS}/test_at_most_one_live_message.py",),
    ),
    Mutation(
        name="late-201-overwrites",
        invariant="3 status only moves forward",
        what="the accept path's forward-only guard always holds: a late 201 replaces any status",
        path="store/sends.py",
        old='_ACCEPT_FORWARD = and_(\n    deliveries.c.status_rank < bindparam("b_rank"),',
        new="_ACCEPT_FORWARD = or_(\n    deliveries.c.status_rank == deliveries.c.status_rank,",
        tests=(f"{TESTS}/test_status_only_moves_forward.py",),
        select="201",
    ),
    Mutation(
        name="final-not-guarded",
        invariant="3 status only moves forward",
        what="should_apply no longer refuses every report after a final status",
        path="statuses.py",
        old="if cur_rank >= FINAL_RANK and (current, new) not in FINAL_MOVES:",
        new="if False:",
        tests=(f"{TESTS}/test_status_only_moves_forward.py",),
        select="not 201",
    ),
    Mutation(
        name="same-rank-applies",
        invariant="3 status only moves forward",
        what="should_apply takes a report of the stored status' rank (a duplicate, or queued after accepted)",
        path="statuses.py",
        old="if new_rank <= cur_rank:",
        new="if new_rank < cur_rank:",
        tests=(f"{TESTS}/test_status_only_moves_forward.py",),
        select="not 201",
    ),
    Mutation(
        name="send-without-its-slot",
        invariant="4 pacing is shared by every worker",
        what="a send goes out without waiting for (or redeeming) the slot it booked",
        path="worker/turns.py",
        old="        self.grant = await self.redeemer.take(self.held)",
        new="        return",
        tests=(f"{TESTS}/test_pacing_is_shared.py",),
    ),
    Mutation(
        name="pickle-fallback",
        invariant="7 no pickle",
        what="a job that is not msgpack is read as a pickle (arq's default format)",
        path="queue/jobs.py",
        old="    obj = msgpack.unpackb(data, raw=False, strict_map_key=True)",
        new=(
            "    import pickle\n"
            "\n"
            '    obj = pickle.loads(data) if data[:1] == b"\\x80" else '
            "msgpack.unpackb(data, raw=False, strict_map_key=True)"
        ),
        tests=(f"{TESTS}/test_no_pickle.py",),
    ),
)


class StaleMutationError(Exception):
    """The text a mutation replaces is not in the source (exactly once) any more."""


def broken_copy(mutation: Mutation, into: Path) -> Path:
    """A copy of ``src/`` under ``into`` with ``mutation`` applied; the directory to put on PYTHONPATH."""
    src = into / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
    target = src / "notifyq" / mutation.path
    text = target.read_text(encoding="utf-8")
    found = text.count(mutation.old)
    if found != 1:
        raise StaleMutationError(f"{mutation.path}: the text to replace occurs {found} times, not once")
    target.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
    return src


def pytest_argv(mutation: Mutation, *, all_databases: bool) -> list[str]:
    """Run the mutation's tests, stopping at the first failure."""
    argv = [sys.executable, "-m", "pytest", "-q", "-x", "-rfE", "-p", "no:cacheprovider", *mutation.tests]
    select = [f"({mutation.select})"] if mutation.select else []
    if not all_databases:
        select.append("not postgres")
    if select:
        argv += ["-k", " and ".join(select)]
    return argv


def run_tests(argv: list[str], pythonpath: Path | None) -> tuple[int, str, float]:
    """Run pytest (``argv``) with ``pythonpath`` first; its exit status (124: timed out), output's tail, seconds."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH")) if p)
        probe = [sys.executable, "-c", "import notifyq; print(notifyq.__file__)"]
        imported = subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout.strip()  # noqa: S603
        if not imported.startswith(str(pythonpath)):
            raise RuntimeError(f"the tests would import notifyq from {imported}, not from the broken copy")
    started = time.monotonic()
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return 124, f"no result after {RUN_TIMEOUT_S} s", time.monotonic() - started
    lines = (done.stdout + done.stderr).strip().splitlines()
    why = [line for line in lines if line.startswith("E ")][:1]  # the first failed assertion, if any
    return done.returncode, "\n".join(why + lines[-3:]), time.monotonic() - started


def check(mutation: Mutation, *, all_databases: bool) -> bool:
    """Whether the mutation's tests fail on a copy of the code with the mutation applied."""
    say = sys.stdout.write
    say(f"\n== {mutation.name} (invariant {mutation.invariant}): {mutation.what}\n")
    with tempfile.TemporaryDirectory(prefix=f"notifyq-mutant-{mutation.name}-") as scratch:
        try:
            pythonpath = broken_copy(mutation, Path(scratch))
        except StaleMutationError as exc:
            say(f"   STALE: {exc}\n")
            return False
        status, tail, took = run_tests(pytest_argv(mutation, all_databases=all_databases), pythonpath)
    caught = status == 1  # tests ran and some failed (not: none collected, an internal error, a timeout)
    say(f"   broken: {'red (caught)' if caught else f'NOT CAUGHT (pytest exit {status})'} in {took:.0f} s\n")
    say("".join(f"   | {line}\n" for line in tail.splitlines()))
    return caught


def baseline(*, all_databases: bool) -> bool:
    """Whether every invariant test passes on the real code."""
    argv = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", TESTS]
    if not all_databases:
        argv += ["-k", "not postgres"]
    status, tail, took = run_tests(argv, None)
    sys.stdout.write(f"== the invariant tests on the real code: {'green' if status == 0 else 'RED'} in {took:.0f} s\n")
    sys.stdout.write("".join(f"   | {line}\n" for line in tail.splitlines()))
    return status == 0


def main(argv: list[str] | None = None) -> int:
    """Check the chosen mutations; 0 when each was caught."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=[m.name for m in MUTATIONS], help="this mutation only")
    parser.add_argument("--baseline", action="store_true", help="first check the invariant tests pass unbroken")
    parser.add_argument("--all-databases", action="store_true", help="PostgreSQL cases too (default: SQLite only)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            sys.stdout.write(f"{m.name:28} {m.invariant}: {m.what}\n")
        return 0
    if args.baseline and not baseline(all_databases=args.all_databases):
        return 1
    missed = [m.name for m in chosen if not check(m, all_databases=args.all_databases)]
    sys.stdout.write(f"\n{len(chosen) - len(missed)} of {len(chosen)} mutations caught")
    sys.stdout.write(f"; not caught: {', '.join(missed)}\n" if missed else "\n")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
