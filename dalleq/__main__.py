"""`python -m dalleq` is `dalleq`."""

from .cli import main

main()
