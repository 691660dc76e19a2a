"""`python -m server` is `dalleq`."""

from .cli import main

main()
