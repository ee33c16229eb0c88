"""What reads runs. Each module says what it holds:

- runs:        the runs a user may see, and one run
- log:         a run's log as the pages read it (lines, download, progress, diffs)
- search:      search in a run's log, through the database's text index
- deployments: what runs where: versions, verifications, promotion and rollback
               candidates, the service page's rows (read from the run history)

The names below are the ones the pages and the API use.
"""

from apps.runs.selectors.log import (
    CHUNK_LINES,
    TAIL_LINES,
    LogLine,
    RunProgress,
    TaskDiff,
    run_diffs,
    run_log_after,
    run_log_before,
    run_log_later,
    run_log_tail,
    run_log_text,
    run_log_window,
    run_progress,
)
from apps.runs.selectors.runs import API_RELATED, PAGE_RELATED, run_get, run_list
from apps.runs.selectors.search import SEARCH_HITS, LogSearch, run_log_search

__all__ = [
    "API_RELATED",
    "CHUNK_LINES",
    "PAGE_RELATED",
    "SEARCH_HITS",
    "TAIL_LINES",
    "LogLine",
    "LogSearch",
    "RunProgress",
    "TaskDiff",
    "run_diffs",
    "run_get",
    "run_list",
    "run_log_after",
    "run_log_before",
    "run_log_later",
    "run_log_search",
    "run_log_tail",
    "run_log_text",
    "run_log_window",
    "run_progress",
]
