"""The exit codes of `pushbutton`, one per outcome a pipeline may want to tell apart.

README.md and docs/ci.md print this table; tests check each code.
"""

from enum import IntEnum


class Exit(IntEnum):
    SUCCESSFUL = 0
    FAILED = 1
    USAGE = 2
    AUTHENTICATION = 3
    REFUSED = 4
    CANCELED = 5
    TIMED_OUT = 6
    LOST = 7
    WAIT_TIMEOUT = 8
    UNREACHABLE = 9
    SUPERSEDED = 10


MEANING = {
    Exit.SUCCESSFUL: "the run succeeded; or the command did what it was asked (a launch "
    "without `--wait`, `status`, `logs`, `runs`, `lock`, `unlock`, `whoami`)",
    Exit.FAILED: "the run failed",
    Exit.USAGE: "usage: a wrong argument or setting (`PUSHBUTTON_URL`), or the portal found the "
    "request wrong (400: a parameter that does not fit the form, an unknown service; "
    "404: no such run)",
    Exit.AUTHENTICATION: "authentication: `PUSHBUTTON_TOKEN` is not set, or the portal did not "
    "accept it (401: unknown, revoked or expired)",
    Exit.REFUSED: "refused (403, 409, 422): no right to run it there, a lock, a freeze, the "
    "promotion rule, the deploy lock held by another run, an idempotency key reused for "
    "another request",
    Exit.CANCELED: "the run was canceled",
    Exit.TIMED_OUT: "the run timed out (its action's timeout)",
    Exit.LOST: "the run was lost (its worker died)",
    Exit.WAIT_TIMEOUT: "`--timeout` passed before the run ended (the run goes on: "
    "`pushbutton wait RUN` later)",
    Exit.UNREACHABLE: "the portal could not be reached, or failed (5xx), for longer than "
    "`--retry-for`",
    Exit.SUPERSEDED: "the run waited in the deploy queue and was skipped: a newer version "
    "succeeded there meanwhile (nothing was deployed; the environment runs the newer one)",
}

# A few words each, for --help.
SHORT = {
    Exit.SUCCESSFUL: "succeeded (or done, without --wait)",
    Exit.FAILED: "the run failed",
    Exit.USAGE: "usage: wrong argument or setting; the portal said 400 or 404",
    Exit.AUTHENTICATION: "authentication: no PUSHBUTTON_TOKEN, or 401",
    Exit.REFUSED: "refused (403, 409, 422): rights, lock, freeze, promotion rule",
    Exit.CANCELED: "the run was canceled",
    Exit.TIMED_OUT: "the run timed out",
    Exit.LOST: "the run was lost (its worker died)",
    Exit.WAIT_TIMEOUT: "--timeout passed; the run goes on",
    Exit.UNREACHABLE: "the portal could not be reached (or 5xx) for --retry-for",
    Exit.SUPERSEDED: "skipped in the deploy queue: a newer version succeeded meanwhile",
}

# A run's final status, as the API says it, and the code it exits with.
OUTCOMES = {
    "successful": Exit.SUCCESSFUL,
    "failed": Exit.FAILED,
    "canceled": Exit.CANCELED,
    "timed_out": Exit.TIMED_OUT,
    "lost": Exit.LOST,
    "superseded": Exit.SUPERSEDED,
}
FINAL_STATUSES = frozenset(OUTCOMES)


def for_http_status(status: int) -> Exit:
    """The exit code of a request the portal answered with `status` (an error)."""
    if status == 401:
        return Exit.AUTHENTICATION
    if status in (403, 409, 422):
        return Exit.REFUSED
    if status >= 500:
        return Exit.UNREACHABLE
    return Exit.USAGE


def table() -> str:
    """The exit codes as a Markdown table."""
    rows = ["| code | meaning |", "| --- | --- |"]
    rows += [f"| {code.value} | {MEANING[code]} |" for code in Exit]
    return "\n".join(rows)
