from django import template

from apps.accounts.permissions import can_view_run

register = template.Library()


@register.filter
def visible_to(runs, user) -> list:
    """The runs `user` may see: a run's page never names runs on environments hidden
    from its reader (e.g. an automatic promotion onto production)."""
    return [run for run in runs if can_view_run(user, run)]
