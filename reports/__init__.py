"""The monthly report: :mod:`~reports.data` (what it shows), :mod:`~reports.charts`,
:mod:`~reports.render` (self-contained HTML) and :mod:`~reports.email` (MIME message, SMTP).

It renders what it is handed and knows no SQL: ``flows/`` assembles a
:class:`~reports.data.ReportData` from the store.
"""
