from localchat.cli.main import main

main()
