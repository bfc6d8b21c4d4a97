"""The ``monitor`` program: drift and model quality of an endpoint's captured traffic."""

from mlstack_containers.monitor.program import main

raise SystemExit(main())
