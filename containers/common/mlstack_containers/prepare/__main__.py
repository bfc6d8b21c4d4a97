from mlstack_containers.prepare.program import main

raise SystemExit(main())
