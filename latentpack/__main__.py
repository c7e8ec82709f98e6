"""``python -m latentpack``."""
from latentpack.cli import main

if __name__ == "__main__":
    main()
