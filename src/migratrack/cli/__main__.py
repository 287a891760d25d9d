from migratrack.cli.main import main

main()
