"""Where a run waiting in the deploy queue stands, for its pages."""

from django import template

from apps.runs.services import WaitState, run_wait_state

register = template.Library()


@register.simple_tag
def wait_state(run) -> WaitState | None:
    """`{% wait_state run as state %}`: its place in line and what it waits for."""
    return run_wait_state(run)


@register.filter
def ordinal(number: int) -> str:
    """1 → "1st", 2 → "2nd", 11 → "11th", 23 → "23rd"."""
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
