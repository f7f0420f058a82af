from owf_runner.cli import main

main()
