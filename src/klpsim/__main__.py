from klpsim.cli import main

raise SystemExit(main())
