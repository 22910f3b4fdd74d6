"""instructor logs every exhausted call at ERROR ("Max retries exceeded"). Inside an
escalating call that is the designed path and the receipt holds it all, so those records
are demoted to DEBUG, only while escalate is calling. Importing this module installs the
filter (the deployments import it)."""

from __future__ import annotations

import logging

from escalate._recorder import recording
from escalate._secrets import install_log_filter

__all__ = ["DemoteInstructorErrors"]


class DemoteInstructorErrors(logging.Filter):
    """Demotes records to DEBUG while a tier call is being recorded, so they reach only
    handlers that asked for debug output."""

    def filter(self, record: logging.LogRecord) -> bool:
        if recording.get(None) is not None and record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


logging.getLogger("instructor.v2.retry").addFilter(DemoteInstructorErrors())
# instructor's records quote the SDK's error text, which may echo the key: clean them too.
install_log_filter(logging.getLogger("instructor.v2.retry"))
