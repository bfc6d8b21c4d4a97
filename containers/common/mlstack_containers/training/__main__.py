from mlstack_containers.training.runner import main

raise SystemExit(main())
