"""`python -m secretsync` is the same as the `secretsync` console script."""

from secretsync.cli import main

if __name__ == "__main__":
    main()
