"""`python -m app ...`: the project's commands (app.cli), as `tgm ...` runs them."""

from app.cli import main

if __name__ == "__main__":
    main()
