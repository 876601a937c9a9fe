from certstatus.cli import main

main()
