from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """{{ counts|get_item:status }}: a dict lookup with a variable key."""
    if not isinstance(mapping, dict):
        return None
    return mapping.get(key)
