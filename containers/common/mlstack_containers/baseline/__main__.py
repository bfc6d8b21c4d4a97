from mlstack_containers.baseline.program import main

raise SystemExit(main())
