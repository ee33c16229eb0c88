"""Choices from real builds: a choice field of an action's form may take its list from
the tags (or branches) of a git repository, or from an HTTP(S) endpoint answering JSON.

The field's `choices_from` says where:

    {"git": "<url or path>", "refs": "tags" | "branches", "match": "v*", "limit": 50}
    {"url": "https://…", "token_credential": "<credential name>", "limit": 50}

Git names are listed newest version first (git's version order: v1.10 before v1.9) and
filtered by `match`, a glob (fnmatch: `*`, `?`, `[…]`) on the short name. An endpoint
answers a JSON list of strings, or of objects {"value": …, "label": …} (label optional).
A source is asked within FORM_CHOICES_TIMEOUT seconds and its answer kept
FORM_CHOICES_CACHE_SECONDS in Django's cache; a failure is not kept, and says why.
"""

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field

import httpx
from django.conf import settings
from django.core.cache import cache

from apps.catalog import git

SOURCE_KEYS = {"git", "refs", "match", "url", "token_credential", "limit"}
REFS = ("tags", "branches")
LIMIT_DEFAULT = 50
LIMIT_MAX = 500
MAX_BODY_BYTES = 1_000_000
MAX_VALUE_CHARS = 1000


@dataclass(frozen=True)
class SourcedChoices:
    """What a choice source answered: its (value, label) pairs, or why it could not."""

    choices: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""

    @property
    def values(self) -> set[str]:
        return {value for value, _ in self.choices}


class SourceError(Exception):
    pass


def source_errors(source, *, where: str) -> list[str]:
    """What is wrong with a field's `choices_from`, as messages Ops can act on."""
    if not isinstance(source, dict):
        return [f"{where}: choices_from must be an object with a 'git' or a 'url' key."]
    errors = []
    if unknown := set(source) - SOURCE_KEYS:
        errors.append(f"{where}: choices_from has unknown keys {', '.join(sorted(unknown))}.")
    if ("git" in source) == ("url" in source):
        return [*errors, f"{where}: choices_from needs exactly one of 'git' and 'url'."]
    if "git" in source:
        repo = source["git"]
        if not isinstance(repo, str) or not repo.strip() or repo.startswith("-"):
            errors.append(f"{where}: choices_from.git must be a repository URL or path.")
        if source.get("refs", "tags") not in REFS:
            errors.append(f"{where}: choices_from.refs must be 'tags' or 'branches'.")
        if not isinstance(source.get("match", "*"), str):
            errors.append(f"{where}: choices_from.match must be a glob such as 'v*'.")
        errors += [
            f"{where}: choices_from.{key} is for 'url' sources only."
            for key in ("token_credential",)
            if key in source
        ]
    else:
        url = source["url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            errors.append(f"{where}: choices_from.url must start with http:// or https://.")
        if "token_credential" in source and not (
            isinstance(source["token_credential"], str) and source["token_credential"]
        ):
            errors.append(f"{where}: choices_from.token_credential must name a credential.")
        errors += [
            f"{where}: choices_from.{key} is for 'git' sources only."
            for key in ("refs", "match")
            if key in source
        ]
    limit = source.get("limit", LIMIT_DEFAULT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= LIMIT_MAX:
        errors.append(f"{where}: choices_from.limit must be a whole number from 1 to {LIMIT_MAX}.")
    return errors


def _cache_key(source: dict, token: str) -> str:
    # The token's digest, not the token, goes into the key: a changed token asks again.
    material = json.dumps(
        [source, hashlib.sha256(token.encode()).hexdigest() if token else ""], sort_keys=True
    )
    return "pushbutton:choices:" + hashlib.sha256(material.encode()).hexdigest()


def choices_fetch(source: dict, *, token: str = "") -> SourcedChoices:
    """The choices `source` offers now (from the cache when asked recently), or an error
    saying why there are none. Never raises for an unreachable or misbehaving source."""
    key = _cache_key(source, token)
    cached = cache.get(key)
    if cached is not None:
        return SourcedChoices(choices=[tuple(pair) for pair in cached])
    try:
        choices = _git_choices(source) if "git" in source else _http_choices(source, token)
    except SourceError as exc:
        return SourcedChoices(error=str(exc))
    choices = choices[: source.get("limit", LIMIT_DEFAULT)]
    cache.set(key, choices, settings.FORM_CHOICES_CACHE_SECONDS)
    return SourcedChoices(choices=choices)


def _git_choices(source: dict) -> list[tuple[str, str]]:
    repo, refs, match = source["git"], source.get("refs", "tags"), source.get("match", "*")
    try:
        names = git.refs_list(repo, kind=refs, timeout=settings.FORM_CHOICES_TIMEOUT)
    except git.GitError as exc:
        raise SourceError(f"The {refs} of {repo} could not be listed: {exc}") from exc
    return [(name, name) for name in names if fnmatch.fnmatchcase(name, match)]


def _http_choices(source: dict, token: str) -> list[tuple[str, str]]:
    url = source["url"]
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = settings.FORM_CHOICES_TIMEOUT
    try:
        # No redirects: the token must reach only the address Ops wrote.
        with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
            if response.status_code != 200:
                raise SourceError(f"{url} answered HTTP {response.status_code}.")
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise SourceError(f"{url} answered more than {MAX_BODY_BYTES} bytes.")
    except httpx.TimeoutException as exc:
        raise SourceError(f"{url} did not answer within {timeout:g} s.") from exc
    except httpx.HTTPError as exc:
        raise SourceError(f"{url} could not be reached ({type(exc).__name__}: {exc}).") from exc
    try:
        items = json.loads(body)
    except ValueError as exc:
        raise SourceError(f"{url} did not answer JSON.") from exc
    return _items_choices(items, url=url)


def _items_choices(items, *, url: str) -> list[tuple[str, str]]:
    shape = 'a JSON list of strings or of {"value": …, "label": …} objects'
    if not isinstance(items, list):
        raise SourceError(f"{url} did not answer {shape}.")
    choices, seen = [], set()
    for item in items:
        if isinstance(item, dict):
            value, label = item.get("value"), item.get("label", item.get("value"))
        else:
            value = label = item
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not isinstance(label, str | int | float):
            raise SourceError(f"{url} did not answer {shape}.")
        if not value or len(value) > MAX_VALUE_CHARS or value in seen:
            continue
        seen.add(value)
        choices.append((value, str(label)))
    return choices
