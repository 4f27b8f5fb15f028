"""The console's date formats wherever a template prints a date without its own format.

Django's "en" locale formats win over settings.DATETIME_FORMAT, so the console's formats
live here (FORMAT_MODULE_PATH): "2 Dec 2026, 04:18 UTC", never "Dec. 2, 2026, 4:18 a.m."
The same strings as opsconsole.core.humanize, which the |when and |ago filters use.
"""

from opsconsole.core.humanize import DATE, DATETIME

DATE_FORMAT = DATE
DATETIME_FORMAT = DATETIME
SHORT_DATE_FORMAT = DATE
SHORT_DATETIME_FORMAT = DATETIME
TIME_FORMAT = "H:i T"
