"""PyInstaller entry point: the same ``main()`` as the ``localchat`` console script."""

from localchat.cli.main import main

if __name__ == "__main__":
    main()
