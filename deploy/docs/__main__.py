import sys

from deploy.docs.pages import main

sys.exit(main())
