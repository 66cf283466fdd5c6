"""`python -m cifarb` is the same as the `cifarb` console script."""

from cifarb.cli import main_entry

if __name__ == "__main__":
    main_entry()
