from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """{{ counts|get_item:status }}: a dict lookup with a variable key."""
    if not isinstance(mapping, dict):
        return None
    return mapping.get(key)


@register.filter
def seconds(delta):
    """A timedelta as "2.3 s" or "4 min 05 s", for job and step durations."""
    if delta is None:
        return ""
    total = delta.total_seconds()
    if total < 60:
        return f"{total:.1f} s"
    minutes, secs = divmod(int(total), 60)
    return f"{minutes} min {secs:02d} s"
