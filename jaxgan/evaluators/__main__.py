"""``python -m jaxgan.evaluators``: Inception measures of a .npy of samples."""

from jaxgan.evaluators.inception import main

raise SystemExit(main())
