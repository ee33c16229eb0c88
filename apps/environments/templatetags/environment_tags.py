from django import template

from apps.accounts.permissions import can_lock

register = template.Library()


@register.simple_tag(takes_context=True)
def may_lock(context, environment, service=None) -> bool:
    """{% may_lock environment service as ok %}: may the signed-in user lock it?"""
    return can_lock(context["request"].user, environment=environment, service=service)
