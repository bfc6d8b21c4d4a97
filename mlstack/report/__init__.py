"""The run report (``report.html``): the execution timeline, training curves, evaluation charts,
feature importance, the data and the decisions, as one self-contained HTML file.

:mod:`mlstack.report.build` renders it from :class:`~mlstack.report.build.ReportInputs`;
:mod:`mlstack.report.history` reads the timeline from an execution history in the shape of
Step Functions' ``GetExecutionHistory`` (and records a local run's); :mod:`mlstack.report.svg`
draws the charts; :mod:`mlstack.report.sources` gathers the inputs of a local run or, with boto3,
of a deployed execution.
"""

# The report's file name, beside the evaluation report in S3 (the registered version's customer
# metadata ``report`` names it) and in a local run's directory.
REPORT_FILE = "report.html"
