from pushbutton_cli.cli import main

main()
