from gatekeeper.main import main

raise SystemExit(main())
