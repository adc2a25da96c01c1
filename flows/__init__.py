"""The entry points: Prefect flows and the ``enso`` command line.

Importing this package checks the ``ENSO_*`` settings first: with a bad value the
process exits with status 2 and one message listing every bad variable, before
any work starts and without a traceback (the ``enso`` command, the demo, and the
flow runs a Prefect worker starts all import it).
"""

from enso.config import exit_on_invalid_settings

exit_on_invalid_settings()
