"""Local mode: run the synthesized workflow on this machine, with no AWS account and no Docker.

``mlstack.local.asl`` interprets the state machine definition (Amazon States Language, JSONPath
and JSONata); ``mlstack.local.assembly`` reads it, with its CloudFormation tokens resolved to local
values, from the synthesized cloud assembly; ``mlstack.local.tasks`` runs each Task state's
resource here (the seeding Lambda's handler, the ``train`` and ``serve`` programs, SNS);
``mlstack.local.runner`` ties them together behind ``mlstack local run``.
"""
