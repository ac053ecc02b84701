from local_mlops.cli.app import main

main()
